// @octet/schedules — placeholder, filled in by this change
export {};
