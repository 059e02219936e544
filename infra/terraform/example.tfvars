# Copy to terraform.tfvars and edit.
name                 = "confide"
region               = "eu-central-1"
availability_zones   = ["eu-central-1a", "eu-central-1b", "eu-central-1c"]
vpc_cidr             = "10.40.0.0/16"
allowed_source_cidrs = ["203.0.113.0/24", "198.51.100.16/28"] # your contact-center platforms
gateway_port         = 50051
confide_image        = "123456789012.dkr.ecr.eu-central-1.amazonaws.com/confide:0.1.0"

transcript_retention_days = 14
audit_retention_days      = 365

system_instance_types = ["m7i.2xlarge"]
gpu_instance_types    = ["g6.2xlarge"]
gpu_node_min          = 1
gpu_node_max          = 4
