# The call-record store: PostgreSQL on RDS in the private subnets. Storage, Performance
# Insights and the master password's secret are encrypted with the transcripts key;
# the server refuses plaintext connections (rds.force_ssl); only the EKS cluster's
# security group (the Ray pods) reaches port 5432. Automated backups are kept no
# longer than the operational window plus the shredding delay, and a backup older than
# that holds only rows whose tenant-month key the purge loop has destroyed.

resource "aws_db_subnet_group" "records" {
  name       = "${var.name}-records"
  subnet_ids = aws_subnet.private[*].id
}

resource "aws_security_group" "records" {
  name        = "${var.name}-records"
  description = "PostgreSQL record store: from the EKS cluster security group only"
  vpc_id      = aws_vpc.confide.id
}

resource "aws_vpc_security_group_ingress_rule" "records_from_pods" {
  security_group_id            = aws_security_group.records.id
  description                  = "PostgreSQL from the Ray pods"
  referenced_security_group_id = aws_eks_cluster.confide.vpc_config[0].cluster_security_group_id
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
}

resource "aws_db_parameter_group" "records" {
  name   = "${var.name}-records"
  family = "postgres16"

  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }
  parameter {
    name  = "log_connections"
    value = "1"
  }
  parameter {
    name  = "log_statement"
    value = "ddl" # never "all": statements carry sealed bytes and keys, not text
  }
}

resource "aws_iam_role" "rds_monitoring" {
  name               = "${var.name}-rds-monitoring"
  assume_role_policy = data.aws_iam_policy_document.rds_monitoring_assume.json
}

data "aws_iam_policy_document" "rds_monitoring_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["monitoring.rds.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy_attachment" "rds_monitoring" {
  role       = aws_iam_role.rds_monitoring.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}

resource "aws_db_instance" "records" {
  identifier     = "${var.name}-records"
  engine         = "postgres"
  engine_version = "16"
  instance_class = var.records_instance_class
  db_name        = "confide"
  username       = "confide_admin"
  port           = 5432

  manage_master_user_password   = true
  master_user_secret_kms_key_id = aws_kms_key.purpose["transcripts"].arn

  allocated_storage     = var.records_storage_gib
  max_allocated_storage = 4 * var.records_storage_gib
  storage_type          = "gp3"
  storage_encrypted     = true
  kms_key_id            = aws_kms_key.purpose["transcripts"].arn

  db_subnet_group_name   = aws_db_subnet_group.records.name
  vpc_security_group_ids = [aws_security_group.records.id]
  publicly_accessible    = false
  multi_az               = true
  parameter_group_name   = aws_db_parameter_group.records.name
  ca_cert_identifier     = "rds-ca-rsa2048-g1"

  iam_database_authentication_enabled = true
  deletion_protection                 = true
  skip_final_snapshot                 = false
  final_snapshot_identifier           = "${var.name}-records-final"
  copy_tags_to_snapshot               = true
  backup_retention_period             = module.rules.records_backup_retention_days
  auto_minor_version_upgrade          = true

  enabled_cloudwatch_logs_exports       = ["postgresql", "upgrade"]
  monitoring_interval                   = 60
  monitoring_role_arn                   = aws_iam_role.rds_monitoring.arn
  performance_insights_enabled          = true
  performance_insights_kms_key_id       = aws_kms_key.purpose["transcripts"].arn
  performance_insights_retention_period = 7
}
