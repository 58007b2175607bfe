// Escaping for text and attribute values of the SVG documents this package writes.

const ENTITIES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

/** `s` with the five XML special characters as entities: safe as element text and as a quoted attribute value. */
export function escapeXml(s: unknown): string {
  return String(s).replace(/[&<>"']/g, (c) => ENTITIES[c]);
}

/** An XML attribute name (ASCII subset: what id, class, data-* and aria-* attributes need). */
const ATTRIBUTE_NAME = /^[A-Za-z_:][-A-Za-z0-9_.:]*$/;

/** ` name="value"` for each attribute, values escaped; a TypeError names an attribute that is not a valid name. */
export function attributes(attrs: Readonly<Record<string, string | number>>): string {
  let out = "";
  for (const [name, value] of Object.entries(attrs)) {
    if (!ATTRIBUTE_NAME.test(name)) throw new TypeError(`attribute name ${JSON.stringify(name)} is not a valid XML name`);
    out += ` ${name}="${escapeXml(value)}"`;
  }
  return out;
}
