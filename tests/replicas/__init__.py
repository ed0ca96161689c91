"""Several replicas behind a load balancer, and the database restarting under them."""
