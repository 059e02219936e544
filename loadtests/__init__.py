"""Confide's Locust harness: one contact-center client user, one benchmark driver."""
