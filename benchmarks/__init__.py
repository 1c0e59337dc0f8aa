"""facegen benchmark: metrics, judges, tasks and the leaderboard runner."""
