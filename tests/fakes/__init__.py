"""Test doubles for the services that cannot run here; each is a real server on 127.0.0.1."""
