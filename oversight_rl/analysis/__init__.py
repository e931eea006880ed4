"""Numbers and figures from run directories: statistics, tables and plots. Never trains."""
