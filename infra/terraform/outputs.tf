output "cluster_name" {
  description = "EKS cluster name (aws eks update-kubeconfig --name ...)."
  value       = aws_eks_cluster.confide.name
}

output "gateway_address" {
  description = "Where contact-center platforms connect (mTLS gRPC, TCP passthrough)."
  value       = "${aws_lb.gateway.dns_name}:${module.rules.gateway_port}"
}

output "transcripts_bucket" {
  description = "Sealed exports of call records (the training exports of the records-access work); the records themselves live in RDS."
  value       = aws_s3_bucket.transcripts.id
}

output "records_endpoint" {
  description = "The PostgreSQL record store (records.postgres_host; TLS verify-full with the RDS CA bundle)."
  value       = aws_db_instance.records.address
}

output "audit_bucket" {
  value = aws_s3_bucket.audit.id
}

output "kms_keys" {
  description = "The key of each purpose."
  value       = { for purpose, key in aws_kms_key.purpose : purpose => key.arn }
}

output "ray_service" {
  description = "The RayService manifest applied to the cluster."
  value       = local.ray_service
}
