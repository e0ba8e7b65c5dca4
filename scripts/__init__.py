"""Developer tooling: host set-up helpers, headless execution, fixtures, demo."""
