"""Abuse limits: the request and login throttle, and the expiring counters it keeps.

Counters live in this process or in Redis (shared by replicas), with a per-process fallback
while Redis is unreachable.
"""
