# Stored transcripts: SSE-KMS with the transcripts key, no public access, versioned, and
# expired after the retention period (the rules module bounds it to 7-30 days). And the
# encrypted storage class that Ray's object spilling volumes come from.

resource "aws_s3_bucket" "transcripts" {
  bucket_prefix = "${var.name}-transcripts-"
}

# Both buckets get the same hardening: public access blocked, ACLs off, versioning, and
# SSE-KMS with the key of their purpose (kms.tf).
locals {
  private_buckets = {
    transcripts = aws_s3_bucket.transcripts.id
    audit       = aws_s3_bucket.audit.id
  }
  spill_storage_class = "confide-encrypted-spill"
}

resource "aws_s3_bucket_public_access_block" "private" {
  for_each = local.private_buckets

  bucket                  = each.value
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "private" {
  for_each = local.private_buckets

  bucket = each.value
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_versioning" "private" {
  for_each = local.private_buckets

  bucket = each.value
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "private" {
  for_each = local.private_buckets

  bucket = each.value
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.purpose[each.key].arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "transcripts" {
  bucket = aws_s3_bucket.transcripts.id

  rule {
    id     = "retention"
    status = "Enabled"
    filter {}

    expiration {
      days = module.rules.transcript_retention_days
    }

    # Versioning keeps deleted objects as noncurrent versions: expire them on the
    # same clock, so nothing outlives the retention period.
    noncurrent_version_expiration {
      noncurrent_days = 1
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  rule {
    id     = "remove-expired-delete-markers"
    status = "Enabled"
    filter {}

    expiration {
      expired_object_delete_marker = true
    }
  }
}

resource "aws_s3_bucket_logging" "transcripts" {
  bucket        = aws_s3_bucket.transcripts.id
  target_bucket = aws_s3_bucket.audit.id
  target_prefix = "s3-access/transcripts/"
}

data "aws_iam_policy_document" "transcripts_bucket" {
  statement {
    sid       = "DenyPlaintextTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.transcripts.arn, "${aws_s3_bucket.transcripts.arn}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }

  statement {
    sid       = "DenyOtherKeys"
    effect    = "Deny"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.transcripts.arn}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "StringNotEqualsIfExists"
      variable = "s3:x-amz-server-side-encryption-aws-kms-key-id"
      values   = [aws_kms_key.purpose["transcripts"].arn]
    }
  }

  statement {
    sid       = "OnlyFromTheVpc"
    effect    = "Deny"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = ["${aws_s3_bucket.transcripts.arn}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "StringNotEquals"
      variable = "aws:SourceVpce"
      values   = [aws_vpc_endpoint.s3.id]
    }
  }
}

resource "aws_s3_bucket_policy" "transcripts" {
  bucket = aws_s3_bucket.transcripts.id
  policy = data.aws_iam_policy_document.transcripts_bucket.json
}

# -- Ray object spilling ---------------------------------------------------------------

# Each Ray pod mounts a generic ephemeral volume of this class at /var/lib/confide/spill
# (see kuberay.tf): spilled objects, already sealed by Confide, land on an EBS volume
# encrypted with the volumes key and deleted with the pod.
resource "kubernetes_storage_class_v1" "spill" {
  metadata {
    name = local.spill_storage_class
  }

  storage_provisioner    = "ebs.csi.aws.com"
  reclaim_policy         = "Delete"
  volume_binding_mode    = "WaitForFirstConsumer"
  allow_volume_expansion = true

  parameters = {
    type      = "gp3"
    encrypted = "true"
    kmsKeyId  = aws_kms_key.purpose["volumes"].arn
  }
}
