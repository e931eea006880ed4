"""One agent's mathematics in pure torch: episode labels and routes, the policies, the losses, the methods that
combine them, and returns. Imports nothing of the package but ``envs``."""
