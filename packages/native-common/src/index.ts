// @octet/native-common — placeholder, filled in by this change
export {};
