# Confide's deployment rules, with no provider: the root module passes its variables
# through here, so a plan fails on a bad value before anything is created, and
# `terraform test` checks every rule offline (tests/*.tftest.hcl).

terraform {
  required_version = ">= 1.9"
}

locals {
  min_retention_days = 7
  max_retention_days = 30
  # Instance families with an NVIDIA GPU that the AL2023 NVIDIA AMI supports.
  gpu_families = ["g4dn", "g5", "g6", "g6e", "p4d", "p4de", "p5", "p5e"]
}

variable "vpc_cidr" {
  description = "VPC CIDR: a private (RFC 1918) range of /16 to /20."
  type        = string

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && can(regex("^(10\\.|172\\.(1[6-9]|2[0-9]|3[01])\\.|192\\.168\\.)", var.vpc_cidr))
    error_message = "vpc_cidr must be a private RFC 1918 range."
  }

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && tonumber(split("/", var.vpc_cidr)[1]) >= 16 && tonumber(split("/", var.vpc_cidr)[1]) <= 20
    error_message = "vpc_cidr must be a /16 to /20."
  }
}

variable "availability_zones" {
  description = "At least two availability zones (EKS needs subnets in two)."
  type        = list(string)

  validation {
    condition     = length(var.availability_zones) >= 2 && length(var.availability_zones) <= 4
    error_message = "Give 2 to 4 availability zones."
  }
}

variable "allowed_source_cidrs" {
  description = "Contact-center platform CIDRs allowed to the gateway port."
  type        = list(string)

  validation {
    condition     = length(var.allowed_source_cidrs) > 0
    error_message = "allowed_source_cidrs is required: name the contact-center platforms' ranges."
  }

  validation {
    condition     = alltrue([for cidr in var.allowed_source_cidrs : can(cidrhost(cidr, 0))])
    error_message = "Every allowed_source_cidrs entry must be a valid IPv4 CIDR."
  }

  validation {
    condition = alltrue([
      for cidr in var.allowed_source_cidrs : can(cidrhost(cidr, 0)) && tonumber(split("/", cidr)[1]) >= 8
    ])
    error_message = "The gateway is never open to the world: 0.0.0.0/0 and ranges wider than /8 are refused."
  }
}

variable "gateway_port" {
  description = "The gateway's TCP port: unprivileged, and not one of Ray's own ports."
  type        = number

  validation {
    condition     = var.gateway_port >= 1024 && var.gateway_port <= 65535 && !contains([6379, 8000, 8265, 10001, 52365], var.gateway_port)
    error_message = "gateway_port must be 1024-65535 and not a Ray port (6379, 8000, 8265, 10001, 52365)."
  }
}

variable "transcript_retention_days" {
  description = "Days transcripts are kept."
  type        = number

  validation {
    condition     = var.transcript_retention_days >= local.min_retention_days && var.transcript_retention_days <= local.max_retention_days && floor(var.transcript_retention_days) == var.transcript_retention_days
    error_message = "transcript_retention_days must be a whole number of days from 7 to 30."
  }
}

variable "audit_retention_days" {
  description = "Days audit records stay locked."
  type        = number

  validation {
    condition     = var.audit_retention_days >= 365 && var.audit_retention_days <= 3650
    error_message = "audit_retention_days must be 365 to 3650 (one to ten years)."
  }
}

variable "system_instance_types" {
  description = "System node instance types."
  type        = list(string)

  validation {
    condition     = length(var.system_instance_types) > 0 && alltrue([for t in var.system_instance_types : can(regex("^[a-z][a-z0-9-]*\\.[0-9]*x?large$", t))])
    error_message = "system_instance_types must be EC2 instance types of size large or bigger."
  }
}

variable "gpu_instance_types" {
  description = "GPU node instance types."
  type        = list(string)

  validation {
    condition     = length(var.gpu_instance_types) > 0 && alltrue([for t in var.gpu_instance_types : contains(local.gpu_families, split(".", t)[0])])
    error_message = "gpu_instance_types must be NVIDIA GPU instances (g4dn, g5, g6, g6e, p4d, p4de, p5, p5e)."
  }
}

output "private_subnet_cidrs" {
  description = "One /20-or-smaller private subnet per availability zone, carved from vpc_cidr."
  value       = [for index, zone in var.availability_zones : cidrsubnet(var.vpc_cidr, 4, index)]
}

output "allowed_source_cidrs" {
  value = var.allowed_source_cidrs
}

output "gateway_port" {
  value = var.gateway_port
}

output "gateway_node_port" {
  description = "The Kubernetes NodePort the load balancer targets, derived from the gateway port into 30000-32767."
  value       = 30000 + var.gateway_port % 2768
}

output "transcript_retention_days" {
  value = var.transcript_retention_days
}

output "records_backup_retention_days" {
  description = "Days RDS keeps automated backups of the record store: no longer than the operational window, so no backup outlives the text it copies by more than the purge loop's shredding delay."
  value       = var.transcript_retention_days
}

output "audit_retention_days" {
  value = var.audit_retention_days
}

output "retention_bounds" {
  value = { min = local.min_retention_days, max = local.max_retention_days }
}

output "system_instance_types" {
  value = var.system_instance_types
}

output "gpu_instance_types" {
  value = var.gpu_instance_types
}
