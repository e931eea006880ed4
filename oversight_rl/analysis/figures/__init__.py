"""Figures drawn from run directories: learning curves, budget curves and pictures of behaviour."""
