// The parts of a Markdown file the docs check reads: fenced code blocks with the `docs-check` marker on the
// line before them, the commands of shell blocks, and inline code spans.
//
// Markers (an HTML comment, invisible when rendered; blank lines between it and the fence are allowed):
//   <!-- docs-check -->                        run every command of the next block (from the repository root)
//   <!-- docs-check: timeout=300 cwd=dir -->   the same, with a time limit per command in seconds / another directory
//   <!-- docs-check: skip (why) -->            do not run it; the reason is required
// Inside a checked block a line `# expect: <text>` requires the previous command's output to contain <text>.

import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";

export type DocsMarker =
  | { kind: "check"; timeoutSeconds?: number; cwd?: string }
  | { kind: "skip"; reason: string };

export interface FencedBlock {
  /** the Markdown file, relative to the repository root */
  file: string;
  /** 1-based line of the opening fence */
  line: number;
  /** the info string's first word, lowercased ("" when there is none) */
  language: string;
  /** the lines between the fences, the fence's indentation removed */
  lines: string[];
  marker?: DocsMarker;
  /** a marker comment that could not be read (the check reports it) */
  markerError?: string;
}

export interface Command {
  /** the command as the shell gets it (continuation lines joined) */
  text: string;
  /** 1-based line in the Markdown file */
  line: number;
  /** texts the output must contain (`# expect:` lines after it) */
  expect: string[];
}

/** Info strings of blocks that hold commands to type into a shell. */
export const SHELL_LANGUAGES = new Set(["sh", "bash", "shell", "zsh", "console", "shell-session"]);

const MARKER = /^\s*<!--\s*docs-check\b(.*?)-->\s*$/;
const FENCE = /^( {0,3})(`{3,}|~{3,})(.*)$/;

export function parseMarker(body: string): DocsMarker {
  const text = body.trim().replace(/^:\s*/, "");
  if (text === "") return { kind: "check" };
  const skip = /^skip\b\s*(.*)$/s.exec(text);
  if (skip) {
    const reason = skip[1].trim().replace(/^\((.*)\)$/s, "$1").replace(/^[:—-]\s*/, "").trim();
    if (!reason) throw new RangeError("docs-check: skip needs a reason, e.g. <!-- docs-check: skip (needs Docker) -->");
    return { kind: "skip", reason };
  }
  const marker: DocsMarker = { kind: "check" };
  for (const option of text.split(/\s+/)) {
    const [key, value] = option.split("=", 2);
    if (key === "timeout" && value && /^\d+$/.test(value) && Number(value) > 0) marker.timeoutSeconds = Number(value);
    else if (key === "cwd" && value) marker.cwd = value;
    else throw new RangeError(`docs-check: unknown option ${JSON.stringify(option)} (known: timeout=<seconds>, cwd=<dir>, skip (reason))`);
  }
  return marker;
}

/** The fenced code blocks of a Markdown text, each with the marker before it, if any. */
export function fencedBlocks(text: string, file: string): FencedBlock[] {
  const lines = text.split(/\r?\n/);
  const blocks: FencedBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = FENCE.exec(lines[i]);
    if (!open) continue;
    const [, indent, fence, info] = open;
    const block: FencedBlock = { file, line: i + 1, language: info.trim().split(/\s+/)[0]?.toLowerCase() ?? "", lines: [] };
    let before = i - 1;
    while (before >= 0 && lines[before].trim() === "") before--;
    const marker = before >= 0 ? MARKER.exec(lines[before]) : null;
    if (marker) {
      try {
        block.marker = parseMarker(marker[1]);
      } catch (e) {
        block.markerError = (e as Error).message;
      }
    }
    let j = i + 1;
    for (; j < lines.length; j++) {
      const close = /^ {0,3}(`{3,}|~{3,})\s*$/.exec(lines[j]);
      if (close && close[1][0] === fence[0] && close[1].length >= fence.length) break;
      block.lines.push(lines[j].startsWith(indent) ? lines[j].slice(indent.length) : lines[j].trimStart());
    }
    blocks.push(block);
    i = j;
  }
  return blocks;
}

/**
 * The commands of a shell block: one per line, a line ending in `\` continued on the next; blank lines and
 * comment-only lines skipped; `# expect: <text>` attached to the command before it.
 */
export function commandsOf(block: FencedBlock): Command[] {
  const commands: Command[] = [];
  for (let i = 0; i < block.lines.length; i++) {
    const line = block.lines[i];
    const trimmed = line.trim();
    const expect = /^#\s*expect:\s*(.+)$/.exec(trimmed);
    if (expect) {
      const last = commands.at(-1);
      if (!last) throw new RangeError(`${block.file}:${block.line + 1 + i}: "# expect:" before any command`);
      last.expect.push(expect[1].trim());
      continue;
    }
    if (trimmed === "" || trimmed.startsWith("#")) continue;
    const start = i;
    let text = line;
    while (text.endsWith("\\") && i + 1 < block.lines.length) text = `${text.slice(0, -1)} ${block.lines[++i].trim()}`;
    commands.push({ text: text.trim(), line: block.line + 1 + start, expect: [] });
  }
  return commands;
}

/** Inline code spans outside fenced blocks, with their lines. */
export function inlineCode(text: string): { code: string; line: number }[] {
  const spans: { code: string; line: number }[] = [];
  let inFence: string | undefined;
  text.split(/\r?\n/).forEach((line, index) => {
    const fence = /^ {0,3}(`{3,}|~{3,})/.exec(line);
    if (fence) {
      if (inFence === undefined) inFence = fence[1];
      else if (fence[1][0] === inFence[0] && fence[1].length >= inFence.length) inFence = undefined;
      return;
    }
    if (inFence !== undefined) return;
    for (const m of line.matchAll(/(`+)([^`]|[^`].*?[^`])\1(?!`)/g)) spans.push({ code: m[2].trim(), line: index + 1 });
  });
  return spans;
}

/** The Markdown files the docs check reads: every README.md, and everything under docs/. */
export function documentationFiles(root: string): string[] {
  const out: string[] = [];
  const skipDirs = new Set(["node_modules", "dist", "build", ".git", ".carry", ".turbo", "octet-run"]);
  const walk = (dir: string, underDocs: boolean): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        if (!skipDirs.has(entry.name)) walk(path, underDocs || relative(root, path) === "docs");
      } else if (entry.isFile() && (entry.name === "README.md" || (underDocs && entry.name.endsWith(".md")))) {
        out.push(relative(root, path).split("\\").join("/"));
      }
    }
  };
  walk(root, false);
  return out.sort();
}

export function readText(root: string, file: string): string {
  return readFileSync(join(root, file), "utf8");
}
