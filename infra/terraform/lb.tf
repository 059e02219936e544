# A Network Load Balancer with a plain TCP listener: TLS passes through untouched, so
# mutual TLS ends at Confide's gateway and the tenant identity stays the client
# certificate. Only the contact-center platforms' CIDRs may connect.

resource "aws_security_group" "gateway_lb" {
  name        = "${var.name}-gateway-lb"
  description = "Confide gateway: the contact-center platforms only"
  vpc_id      = aws_vpc.confide.id

  tags = { Name = "${var.name}-gateway-lb" }
}

resource "aws_vpc_security_group_ingress_rule" "gateway_from_platforms" {
  for_each = toset(module.rules.allowed_source_cidrs)

  security_group_id = aws_security_group.gateway_lb.id
  description       = "mTLS gRPC from a contact-center platform"
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = module.rules.gateway_port
  to_port           = module.rules.gateway_port
}

resource "aws_vpc_security_group_egress_rule" "gateway_to_nodes" {
  security_group_id = aws_security_group.gateway_lb.id
  description       = "To the gateway NodePort inside the VPC"
  cidr_ipv4         = var.vpc_cidr
  ip_protocol       = "tcp"
  from_port         = module.rules.gateway_node_port
  to_port           = module.rules.gateway_node_port
}

resource "aws_lb" "gateway" {
  name                             = "${var.name}-gateway"
  load_balancer_type               = "network"
  internal                         = var.gateway_internal
  subnets                          = aws_subnet.private[*].id
  security_groups                  = [aws_security_group.gateway_lb.id]
  enable_deletion_protection       = true
  enable_cross_zone_load_balancing = true

  access_logs {
    bucket  = aws_s3_bucket.audit.id
    prefix  = "nlb"
    enabled = true
  }
}

resource "aws_lb_target_group" "gateway" {
  name                 = "${var.name}-gateway"
  port                 = module.rules.gateway_node_port
  protocol             = "TCP"
  target_type          = "instance"
  vpc_id               = aws_vpc.confide.id
  deregistration_delay = 30 # calls in progress finish on a draining node (gateway grace)

  health_check {
    protocol            = "TCP"
    port                = "traffic-port"
    healthy_threshold   = 2
    unhealthy_threshold = 2
    interval            = 10
  }
}

resource "aws_lb_listener" "gateway" {
  load_balancer_arn = aws_lb.gateway.arn
  port              = module.rules.gateway_port
  protocol          = "TCP" # not TLS: the load balancer never holds a key or sees plaintext

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.gateway.arn
  }
}

# The Ray head (and with it the gateway replica) runs on the system nodes.
resource "aws_autoscaling_attachment" "gateway" {
  autoscaling_group_name = aws_eks_node_group.system.resources[0].autoscaling_groups[0].name
  lb_target_group_arn    = aws_lb_target_group.gateway.arn
}
