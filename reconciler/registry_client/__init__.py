"""OCI Distribution client on httpx. Imports nothing else of reconciler (it could ship alone)."""
