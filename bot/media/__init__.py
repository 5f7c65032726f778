"""What people attach: classifying files, capped downloads, and images normalized within a
process-wide pixel budget."""
