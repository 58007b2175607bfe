// Placeholder until the orchestrator lands; see the issue.
export {};
