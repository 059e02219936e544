variable "name" {
  description = "Name of this Confide deployment; prefixes every resource."
  type        = string
  default     = "confide"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}$", var.name))
    error_message = "name must be 2-21 characters of a-z, 0-9 and -, starting with a letter."
  }
}

variable "region" {
  description = "AWS region."
  type        = string
}

variable "vpc_cidr" {
  description = "CIDR of the VPC; the rules module carves the private subnets from it."
  type        = string
  default     = "10.40.0.0/16"
}

variable "availability_zones" {
  description = "Availability zones for the private subnets (at least two, as EKS requires)."
  type        = list(string)
}

variable "allowed_source_cidrs" {
  description = "CIDRs of the contact-center platforms that may reach the gateway port. Required; 0.0.0.0/0 is refused."
  type        = list(string)
}

variable "gateway_port" {
  description = "TCP port of Confide's mTLS gRPC gateway, on the load balancer and in the cluster."
  type        = number
  default     = 50051
}

variable "gateway_internal" {
  description = "Keep the gateway's load balancer internal (reached over VPN, Direct Connect or peering). Set false only to expose it, still restricted to allowed_source_cidrs, from public subnets you add."
  type        = bool
  default     = true
}

variable "transcript_retention_days" {
  description = "Days a stored transcript is kept before S3 expires it (the rules module bounds it)."
  type        = number
  default     = 14
}

variable "audit_retention_days" {
  description = "Days audit records stay locked (S3 Object Lock, compliance mode)."
  type        = number
  default     = 365
}

variable "kubernetes_version" {
  description = "EKS Kubernetes version."
  type        = string
  default     = "1.33"
}

variable "system_instance_types" {
  description = "Instance types of the system node group (Ray head, gateway, KubeRay operator)."
  type        = list(string)
  default     = ["m7i.2xlarge"]
}

variable "system_node_count" {
  description = "Nodes in the system node group."
  type        = number
  default     = 2
}

variable "gpu_instance_types" {
  description = "Instance types of the GPU node group (transcription and dialogue workers)."
  type        = list(string)
  default     = ["g6.2xlarge"]
}

variable "gpu_node_min" {
  description = "Fewest GPU nodes."
  type        = number
  default     = 1
}

variable "gpu_node_max" {
  description = "Most GPU nodes."
  type        = number
  default     = 4
}

variable "node_volume_gib" {
  description = "Root volume of every node, GiB (encrypted with the volumes key)."
  type        = number
  default     = 100
}

variable "spill_volume_gib" {
  description = "Size of each Ray pod's object spilling volume, GiB (encrypted with the volumes key)."
  type        = number
  default     = 200
}

variable "confide_image" {
  description = "Confide's container image in your private ECR (Ray 2.60, Python 3.11, this repository installed)."
  type        = string
}

variable "ray_version" {
  description = "Ray version inside confide_image (KubeRay needs it)."
  type        = string
  default     = "2.60.0"
}

variable "kuberay_chart_version" {
  description = "Version of the kuberay-operator Helm chart."
  type        = string
  default     = "1.4.2"
}

variable "kuberay_chart_repository" {
  description = "Helm repository of the KubeRay chart; point it at your private mirror (OCI or HTTPS) since the nodes have no internet."
  type        = string
  default     = "https://ray-project.github.io/kuberay-helm/"
}

variable "ray_ca_secret_name" {
  description = "Kubernetes secret (ca.crt, ca.key) of the CA that signs Ray's per-pod TLS certificates (state_dir/pki/ray-ca.*, never the tenant CA: node certificates are TLS clients too); create it from Confide's PKI before step 2 (README.md)."
  type        = string
  default     = "confide-ray-ca"
}

variable "gateway_tls_secret_name" {
  description = "Kubernetes secret (tls.crt, tls.key, ca.crt) with the gateway's server certificate and the CA of tenant client certificates."
  type        = string
  default     = "confide-gateway-tls"
}

variable "records_instance_class" {
  description = "RDS instance class of the PostgreSQL record store."
  type        = string
  default     = "db.m7g.large"
}

variable "records_storage_gib" {
  description = "Initial storage of the record store (autoscaling up to four times this)."
  type        = number
  default     = 50
}

variable "records_secret_name" {
  description = "Kubernetes secret with key `password`: the record store's database password."
  type        = string
  default     = "confide-records"
}

variable "rds_ca_secret_name" {
  description = "Kubernetes secret with key `global-bundle.pem`: the RDS certificate bundle."
  type        = string
  default     = "confide-rds-ca"
}
