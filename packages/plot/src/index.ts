// @octet/plot — placeholder, filled in by this change
export {};
