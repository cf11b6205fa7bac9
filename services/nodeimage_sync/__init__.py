"""nodeimage_sync: one NodeImage per Node, NodeImage maintenance, and the cluster image inventory."""
