"""The scheduler: ImagePullJob and ImageListPullJob controllers, and the Jobs and Credentials gRPC APIs."""
