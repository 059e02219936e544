# EKS with a private API endpoint and KMS-encrypted secrets; a system node group (Ray
# head, gateway, KubeRay operator) and a GPU node group (transcription and dialogue
# workers, tainted so nothing else lands there). Every volume is encrypted.

locals {
  cluster_name            = var.name
  confide_namespace       = "confide"
  confide_service_account = "confide-ray"
  # Must equal keys.aws_alias_prefix of confide.yaml (tests/infra checks it).
  kek_alias_prefix = "alias/confide-kek/"
}

# -- IAM --------------------------------------------------------------------------------

data "aws_iam_policy_document" "eks_assume" {
  statement {
    actions = ["sts:AssumeRole", "sts:TagSession"]
    principals {
      type        = "Service"
      identifiers = ["eks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "cluster" {
  name               = "${var.name}-eks-cluster"
  assume_role_policy = data.aws_iam_policy_document.eks_assume.json
}

resource "aws_iam_role_policy_attachment" "cluster" {
  role       = aws_iam_role.cluster.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/AmazonEKSClusterPolicy"
}

data "aws_iam_policy_document" "node_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "node" {
  name               = "${var.name}-eks-node"
  assume_role_policy = data.aws_iam_policy_document.node_assume.json
}

resource "aws_iam_role_policy_attachment" "node" {
  for_each = toset([
    "AmazonEKSWorkerNodeMinimalPolicy",
    "AmazonEKS_CNI_Policy",
    "AmazonEC2ContainerRegistryPullOnly",
  ])

  role       = aws_iam_role.node.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/${each.value}"
}

# Pods get AWS credentials through EKS Pod Identity, never from the node role.
data "aws_iam_policy_document" "pod_identity_assume" {
  statement {
    actions = ["sts:AssumeRole", "sts:TagSession"]
    principals {
      type        = "Service"
      identifiers = ["pods.eks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "ebs_csi" {
  name               = "${var.name}-ebs-csi"
  assume_role_policy = data.aws_iam_policy_document.pod_identity_assume.json
}

resource "aws_iam_role_policy_attachment" "ebs_csi" {
  role       = aws_iam_role.ebs_csi.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"
}

# Confide's Ray pods: the transcript bucket, and the sealing KEKs of the aws-kms key
# provider (one key per tenant and month under alias/confide/).
resource "aws_iam_role" "confide_pods" {
  name               = "${var.name}-ray-pods"
  assume_role_policy = data.aws_iam_policy_document.pod_identity_assume.json
}

data "aws_iam_policy_document" "confide_pods" {
  statement {
    sid       = "TranscriptObjects"
    actions   = ["s3:PutObject", "s3:GetObject", "s3:DeleteObject"]
    resources = ["${aws_s3_bucket.transcripts.arn}/*"]
  }

  statement {
    sid       = "TranscriptBucket"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.transcripts.arn]
  }

  # The audit log's signed checkpoints, copied outside the database into the Object
  # Lock bucket (confide.yaml audit.anchor: s3): written and read, never deleted.
  statement {
    sid       = "AuditCheckpoints"
    actions   = ["s3:PutObject", "s3:GetObject"]
    resources = ["${aws_s3_bucket.audit.arn}/confide/checkpoints/*"]
  }

  statement {
    sid       = "AuditCheckpointListing"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.audit.arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["confide/checkpoints/*"]
    }
  }

  # Tenant-month KEKs (serve/core/aws_kms.py), under their own alias prefix so none of
  # this reaches the cluster's purpose keys (alias/confide/<purpose>, kms.tf). Exactly
  # the calls the provider makes; tests/infra checks the two stay equal.
  statement {
    sid = "UseTenantKeks"
    actions = [
      "kms:DescribeKey",
      "kms:Encrypt",
      "kms:Decrypt",
      "kms:ListKeyRotations",
      "kms:EnableKeyRotation",
      "kms:RotateKeyOnDemand",
      "kms:DisableKey",
      "kms:EnableKey",
      # The purge loop crypto-shreds a tenant-month whose calls are all past retention.
      "kms:ScheduleKeyDeletion",
    ]
    resources = ["arn:${data.aws_partition.current.partition}:kms:${var.region}:${data.aws_caller_identity.current.account_id}:key/*"]
    condition {
      test     = "ForAnyValue:StringLike"
      variable = "kms:ResourceAliases"
      values   = ["${local.kek_alias_prefix}*"]
    }
  }

  # A new tenant-month's key: created tagged confide:kek, then given its alias.
  statement {
    sid       = "CreateTenantKeks"
    actions   = ["kms:CreateKey", "kms:TagResource"]
    resources = ["*"]
    condition {
      test     = "ForAllValues:StringEquals"
      variable = "aws:TagKeys"
      values   = ["confide:kek"]
    }
    condition {
      test     = "Null"
      variable = "aws:RequestTag/confide:kek"
      values   = ["false"]
    }
  }

  statement {
    sid       = "AliasTenantKeks"
    actions   = ["kms:CreateAlias"]
    resources = ["arn:${data.aws_partition.current.partition}:kms:${var.region}:${data.aws_caller_identity.current.account_id}:alias/${trimprefix(local.kek_alias_prefix, "alias/")}*"]
  }

  # CreateAlias onto a new, still unaliased tenant key; and deleting such a key when
  # another process won the race to alias that month's key.
  statement {
    sid       = "AliasOnlyTenantKeks"
    actions   = ["kms:CreateAlias", "kms:ScheduleKeyDeletion"]
    resources = ["arn:${data.aws_partition.current.partition}:kms:${var.region}:${data.aws_caller_identity.current.account_id}:key/*"]
    condition {
      test     = "Null"
      variable = "aws:ResourceTag/confide:kek"
      values   = ["false"]
    }
  }
}

resource "aws_iam_role_policy" "confide_pods" {
  name   = "confide-ray-pods"
  role   = aws_iam_role.confide_pods.id
  policy = data.aws_iam_policy_document.confide_pods.json
}

# -- the cluster ------------------------------------------------------------------------

resource "aws_cloudwatch_log_group" "eks" {
  name              = "/aws/eks/${local.cluster_name}/cluster"
  retention_in_days = 365
  kms_key_id        = aws_kms_key.purpose["audit"].arn
}

resource "aws_eks_cluster" "confide" {
  name     = local.cluster_name
  version  = var.kubernetes_version
  role_arn = aws_iam_role.cluster.arn

  enabled_cluster_log_types = ["api", "audit", "authenticator", "controllerManager", "scheduler"]

  access_config {
    authentication_mode                         = "API"
    bootstrap_cluster_creator_admin_permissions = true
  }

  vpc_config {
    subnet_ids              = aws_subnet.private[*].id
    endpoint_private_access = true
    endpoint_public_access  = false
  }

  encryption_config {
    resources = ["secrets"]
    provider {
      key_arn = aws_kms_key.purpose["cluster_secrets"].arn
    }
  }

  depends_on = [aws_iam_role_policy_attachment.cluster, aws_cloudwatch_log_group.eks]
}

resource "aws_eks_addon" "core" {
  for_each = toset(["vpc-cni", "coredns", "kube-proxy", "eks-pod-identity-agent"])

  cluster_name = aws_eks_cluster.confide.name
  addon_name   = each.value

  depends_on = [aws_eks_node_group.system]
}

resource "aws_eks_addon" "ebs_csi" {
  cluster_name = aws_eks_cluster.confide.name
  addon_name   = "aws-ebs-csi-driver"

  pod_identity_association {
    role_arn        = aws_iam_role.ebs_csi.arn
    service_account = "ebs-csi-controller-sa"
  }

  depends_on = [aws_eks_addon.core]
}

resource "aws_eks_pod_identity_association" "confide_pods" {
  cluster_name    = aws_eks_cluster.confide.name
  namespace       = local.confide_namespace
  service_account = local.confide_service_account
  role_arn        = aws_iam_role.confide_pods.arn
}

# -- nodes ------------------------------------------------------------------------------

resource "aws_launch_template" "node" {
  for_each = toset(["system", "gpu"])

  name_prefix = "${var.name}-${each.value}-"

  block_device_mappings {
    device_name = "/dev/xvda"
    ebs {
      volume_size           = var.node_volume_gib
      volume_type           = "gp3"
      encrypted             = true
      kms_key_id            = aws_kms_key.purpose["volumes"].arn
      delete_on_termination = true
    }
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required" # IMDSv2 only
    http_put_response_hop_limit = 1          # pods cannot reach the node's credentials
  }

  monitoring {
    enabled = true
  }

  tag_specifications {
    resource_type = "instance"
    tags          = { Name = "${var.name}-${each.value}" }
  }
}

resource "aws_eks_node_group" "system" {
  cluster_name    = aws_eks_cluster.confide.name
  node_group_name = "system"
  node_role_arn   = aws_iam_role.node.arn
  subnet_ids      = aws_subnet.private[*].id
  ami_type        = "AL2023_x86_64_STANDARD"
  instance_types  = module.rules.system_instance_types

  scaling_config {
    desired_size = var.system_node_count
    min_size     = var.system_node_count
    max_size     = var.system_node_count
  }

  launch_template {
    id      = aws_launch_template.node["system"].id
    version = aws_launch_template.node["system"].latest_version
  }

  labels = { "confide.io/pool" = "system" }

  depends_on = [aws_iam_role_policy_attachment.node]
}

resource "aws_eks_node_group" "gpu" {
  cluster_name    = aws_eks_cluster.confide.name
  node_group_name = "gpu"
  node_role_arn   = aws_iam_role.node.arn
  subnet_ids      = aws_subnet.private[*].id
  ami_type        = "AL2023_x86_64_NVIDIA"
  instance_types  = module.rules.gpu_instance_types

  scaling_config {
    desired_size = var.gpu_node_min
    min_size     = var.gpu_node_min
    max_size     = var.gpu_node_max
  }

  launch_template {
    id      = aws_launch_template.node["gpu"].id
    version = aws_launch_template.node["gpu"].latest_version
  }

  labels = { "confide.io/pool" = "gpu" }

  taint {
    key    = "nvidia.com/gpu"
    value  = "true"
    effect = "NO_SCHEDULE"
  }

  depends_on = [aws_iam_role_policy_attachment.node]

  lifecycle {
    ignore_changes = [scaling_config[0].desired_size] # the Ray autoscaler's business
  }
}

# The gateway's load balancer reaches the gateway's NodePort on the system nodes.
resource "aws_vpc_security_group_ingress_rule" "nodes_gateway_from_lb" {
  security_group_id            = aws_eks_cluster.confide.vpc_config[0].cluster_security_group_id
  description                  = "Gateway NodePort from the gateway load balancer only"
  referenced_security_group_id = aws_security_group.gateway_lb.id
  ip_protocol                  = "tcp"
  from_port                    = module.rules.gateway_node_port
  to_port                      = module.rules.gateway_node_port
}
