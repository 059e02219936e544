provider "aws" {
  region = var.region

  default_tags {
    tags = {
      Project     = "confide"
      Environment = var.name
      ManagedBy   = "terraform"
    }
  }
}

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

# The EKS API endpoint is private: run apply from inside the VPC (a bastion, a VPN or a
# CI runner in a private subnet). The cluster must exist before these providers can
# talk to it, hence the two-step apply in README.md.
data "aws_eks_cluster_auth" "confide" {
  name = aws_eks_cluster.confide.name
}

provider "kubernetes" {
  host                   = aws_eks_cluster.confide.endpoint
  cluster_ca_certificate = base64decode(aws_eks_cluster.confide.certificate_authority[0].data)
  token                  = data.aws_eks_cluster_auth.confide.token
}

provider "helm" {
  kubernetes = {
    host                   = aws_eks_cluster.confide.endpoint
    cluster_ca_certificate = base64decode(aws_eks_cluster.confide.certificate_authority[0].data)
    token                  = data.aws_eks_cluster_auth.confide.token
  }
}
