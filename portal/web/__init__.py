"""Small pieces every app's pages share: form fields, CSV downloads, re-authentication, the
read-only admin. Part of the kernel: it imports no app."""
