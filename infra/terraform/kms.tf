# One KMS key per purpose, rotation on, each with an explicit key policy: the account
# administers it through IAM, and only the named service or role may use it.

locals {
  account_root = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"
  kms_purposes = {
    cluster_secrets = "EKS secrets envelope encryption"
    volumes         = "EBS volumes of nodes and Ray's object spilling"
    transcripts     = "stored transcripts (S3 SSE-KMS)"
    audit           = "CloudTrail, audit records, flow logs"
  }
}

# Key policies (not IAM policies): "Resource: *" in a key policy means this key.
locals {
  autoscaling_role = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"

  key_administration = {
    Sid       = "AccountAdministersThroughIam"
    Effect    = "Allow"
    Principal = { AWS = local.account_root }
    Action    = "kms:*"
    Resource  = "*"
  }

  key_policies = {
    cluster_secrets = [
      local.key_administration,
      {
        Sid       = "EksEncryptsSecrets"
        Effect    = "Allow"
        Principal = { AWS = aws_iam_role.cluster.arn }
        Action    = ["kms:Encrypt", "kms:Decrypt", "kms:DescribeKey", "kms:CreateGrant"]
        Resource  = "*"
      },
    ]
    volumes = [
      local.key_administration,
      {
        Sid       = "NodesAndEbsCsiUseVolumes"
        Effect    = "Allow"
        Principal = { AWS = [local.autoscaling_role, aws_iam_role.ebs_csi.arn] }
        Action    = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]
        Resource  = "*"
      },
      {
        Sid       = "GrantsOnlyForAwsResources"
        Effect    = "Allow"
        Principal = { AWS = [local.autoscaling_role, aws_iam_role.ebs_csi.arn] }
        Action    = "kms:CreateGrant"
        Resource  = "*"
        Condition = { Bool = { "kms:GrantIsForAWSResource" = "true" } }
      },
    ]
    transcripts = [
      local.key_administration,
      {
        Sid       = "ConfideReadsAndWritesTranscriptsThroughS3"
        Effect    = "Allow"
        Principal = { AWS = aws_iam_role.confide_pods.arn }
        Action    = ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey*", "kms:DescribeKey"]
        Resource  = "*"
        Condition = { StringEquals = { "kms:ViaService" = "s3.${var.region}.amazonaws.com" } }
      },
    ]
    audit = [
      local.key_administration,
      {
        Sid       = "CloudTrailEncryptsLogs"
        Effect    = "Allow"
        Principal = { Service = "cloudtrail.amazonaws.com" }
        Action    = ["kms:GenerateDataKey*", "kms:DescribeKey"]
        Resource  = "*"
        Condition = {
          StringLike = {
            "kms:EncryptionContext:aws:cloudtrail:arn" = "arn:${data.aws_partition.current.partition}:cloudtrail:*:${data.aws_caller_identity.current.account_id}:trail/*"
          }
        }
      },
      {
        Sid       = "CloudWatchLogsEncryptsConfideLogGroups"
        Effect    = "Allow"
        Principal = { Service = "logs.${var.region}.amazonaws.com" }
        Action    = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]
        Resource  = "*"
        Condition = {
          ArnLike = {
            "kms:EncryptionContext:aws:logs:arn" = [
              "arn:${data.aws_partition.current.partition}:logs:${var.region}:${data.aws_caller_identity.current.account_id}:log-group:/confide/${var.name}/*",
              "arn:${data.aws_partition.current.partition}:logs:${var.region}:${data.aws_caller_identity.current.account_id}:log-group:/aws/eks/${var.name}/*",
            ]
          }
        }
      },
      {
        Sid       = "LogDeliveryWritesAccessLogs"
        Effect    = "Allow"
        Principal = { Service = ["delivery.logs.amazonaws.com", "logging.s3.amazonaws.com"] }
        Action    = ["kms:GenerateDataKey*", "kms:Encrypt", "kms:Decrypt"]
        Resource  = "*"
        Condition = { StringEquals = { "aws:SourceAccount" = data.aws_caller_identity.current.account_id } }
      },
    ]
  }
}

resource "aws_kms_key" "purpose" {
  for_each = local.kms_purposes

  description             = "${var.name}: ${each.value}"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = jsonencode({ Version = "2012-10-17", Statement = local.key_policies[each.key] })
}

resource "aws_kms_alias" "purpose" {
  for_each = local.kms_purposes

  name          = "alias/${var.name}/${replace(each.key, "_", "-")}"
  target_key_id = aws_kms_key.purpose[each.key].key_id
}
