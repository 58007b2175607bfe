// Placeholder until the trainer lands; see the issue.
export {};
