# terraform test: every rule accepts the example values and refuses a bad one.

variables {
  vpc_cidr                  = "10.40.0.0/16"
  availability_zones        = ["eu-central-1a", "eu-central-1b", "eu-central-1c"]
  allowed_source_cidrs      = ["203.0.113.0/24", "198.51.100.16/28"]
  gateway_port              = 50051
  transcript_retention_days = 14
  audit_retention_days      = 365
  system_instance_types     = ["m7i.2xlarge"]
  gpu_instance_types        = ["g6.2xlarge", "g5.xlarge"]
}

run "example_values_pass" {
  command = plan

  assert {
    condition     = output.private_subnet_cidrs == ["10.40.0.0/20", "10.40.16.0/20", "10.40.32.0/20"]
    error_message = "private subnets are carved as /20s in order"
  }

  assert {
    condition     = output.gateway_node_port >= 30000 && output.gateway_node_port <= 32767
    error_message = "the gateway NodePort must be in Kubernetes' NodePort range"
  }

  assert {
    condition     = output.retention_bounds == { min = 7, max = 30 }
    error_message = "transcripts are kept 7 to 30 days"
  }
}

run "world_open_gateway_is_refused" {
  command = plan
  variables {
    allowed_source_cidrs = ["203.0.113.0/24", "0.0.0.0/0"]
  }
  expect_failures = [var.allowed_source_cidrs]
}

run "missing_source_cidrs_are_refused" {
  command = plan
  variables {
    allowed_source_cidrs = []
  }
  expect_failures = [var.allowed_source_cidrs]
}

run "malformed_cidr_is_refused" {
  command = plan
  variables {
    allowed_source_cidrs = ["203.0.113.0/33"]
  }
  expect_failures = [var.allowed_source_cidrs]
}

run "public_vpc_range_is_refused" {
  command = plan
  variables {
    vpc_cidr = "8.8.0.0/16"
  }
  expect_failures = [var.vpc_cidr]
}

run "retention_below_seven_days_is_refused" {
  command = plan
  variables {
    transcript_retention_days = 3
  }
  expect_failures = [var.transcript_retention_days]
}

run "retention_above_thirty_days_is_refused" {
  command = plan
  variables {
    transcript_retention_days = 90
  }
  expect_failures = [var.transcript_retention_days]
}

run "short_audit_retention_is_refused" {
  command = plan
  variables {
    audit_retention_days = 30
  }
  expect_failures = [var.audit_retention_days]
}

run "privileged_or_ray_gateway_port_is_refused" {
  command = plan
  variables {
    gateway_port = 8265
  }
  expect_failures = [var.gateway_port]
}

run "cpu_instance_in_gpu_group_is_refused" {
  command = plan
  variables {
    gpu_instance_types = ["m7i.2xlarge"]
  }
  expect_failures = [var.gpu_instance_types]
}

run "single_zone_is_refused" {
  command = plan
  variables {
    availability_zones = ["eu-central-1a"]
  }
  expect_failures = [var.availability_zones]
}
