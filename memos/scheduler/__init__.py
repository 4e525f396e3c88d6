"""The tier scheduler: policy, planner, typed steps, jobs and the background runner."""
