# Every value that a rule constrains passes through the provider-free rules module, so a
# bad value fails the plan before anything is created (and the rules are tested offline).
module "rules" {
  source = "./modules/rules"

  vpc_cidr                  = var.vpc_cidr
  availability_zones        = var.availability_zones
  allowed_source_cidrs      = var.allowed_source_cidrs
  gateway_port              = var.gateway_port
  transcript_retention_days = var.transcript_retention_days
  audit_retention_days      = var.audit_retention_days
  system_instance_types     = var.system_instance_types
  gpu_instance_types        = var.gpu_instance_types
}
