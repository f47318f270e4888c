"""The worker process: its entry point and the maintenance it runs between jobs (the jobs
themselves live in app.learning)."""
