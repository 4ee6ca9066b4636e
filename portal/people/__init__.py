"""People: the custom user and its IAM name, capabilities, separation of duties, the sandbox's demo
people. Part of the kernel: every app may import it; it imports no app."""
