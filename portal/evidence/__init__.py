"""What auditors (and a client's own contacts) read: the access matrix, the histories of grants,
links and people, the audit log's filters and the evidence pack. It reads onboarding and switchroles
and sits above them, below the apps that show it (elevations' client pages, the API, the auditors'
workspace)."""
