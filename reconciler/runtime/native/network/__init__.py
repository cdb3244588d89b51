"""The native engine's networks: bridges and veths (netlink, the only pyroute2 user), address
management, the firewall (our nft table), and each container's hosts and resolv.conf."""
