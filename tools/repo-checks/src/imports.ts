// Every module reference in a workspace's code — static imports, `export … from`, dynamic `import()`,
// `import("…")` types, `require()` and the resolvers — found with TypeScript's parser (so references in
// comments and strings do not count), each with its file and line.

import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import ts from "typescript";

export type ReferenceKind = "import" | "export-from" | "dynamic-import" | "import-type" | "require" | "resolve";

export interface ModuleReference {
  /** the file, relative to the repository root */
  file: string;
  /** 1-based */
  line: number;
  specifier: string;
  kind: ReferenceKind;
}

const CODE_FILE = /\.(?:ts|mts|cts|tsx|js|mjs|cjs)$/;
/** Directories that hold generated or installed code, not the workspace's own sources. */
const NOT_SOURCE = new Set(["node_modules", "dist", "build", "gen", ".carry", "coverage", ".turbo"]);

/** The code files of a workspace directory (absolute paths), generated and installed code left out. */
export function codeFiles(absDir: string): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.name.startsWith(".") && entry.name !== ".") continue;
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        if (!NOT_SOURCE.has(entry.name)) walk(path);
      } else if (entry.isFile() && CODE_FILE.test(entry.name) && !entry.name.endsWith(".d.ts")) {
        out.push(path);
      }
    }
  };
  walk(absDir);
  return out.sort();
}

function scriptKind(file: string): ts.ScriptKind {
  if (/\.(?:js|mjs|cjs)$/.test(file)) return ts.ScriptKind.JS;
  if (file.endsWith(".tsx")) return ts.ScriptKind.TSX;
  return ts.ScriptKind.TS;
}

function literalText(node: ts.Node | undefined): string | undefined {
  if (node && (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node))) return node.text;
  return undefined;
}

/** The module references in one source text. `file` is only used to name them. */
export function referencesIn(text: string, file: string): ModuleReference[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, scriptKind(file));
  const found: ModuleReference[] = [];
  const add = (node: ts.Node, specifier: string | undefined, kind: ReferenceKind): void => {
    if (specifier === undefined) return;
    const line = source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1;
    found.push({ file, line, specifier, kind });
  };
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node)) {
      add(node, literalText(node.moduleSpecifier), "import");
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier) {
      add(node, literalText(node.moduleSpecifier), "export-from");
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      add(node, literalText(node.moduleReference.expression), "require");
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) {
      add(node, literalText(node.argument.literal), "import-type");
    } else if (ts.isCallExpression(node)) {
      const callee = node.expression;
      const first = node.arguments[0];
      if (callee.kind === ts.SyntaxKind.ImportKeyword) {
        add(node, literalText(first), "dynamic-import");
      } else if (ts.isIdentifier(callee) && callee.text === "require") {
        add(node, literalText(first), "require");
      } else if (ts.isPropertyAccessExpression(callee) && callee.name.text === "resolve") {
        // import.meta.resolve("x") and require.resolve("x"): the module must be installed, like an import.
        const target = callee.expression;
        const isImportMeta = ts.isMetaProperty(target) && target.keywordToken === ts.SyntaxKind.ImportKeyword;
        const isRequire = ts.isIdentifier(target) && target.text === "require";
        if (isImportMeta || isRequire) add(node, literalText(first), "resolve");
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

/** The module references in every code file under `absDir`, files named relative to `root`. */
export function referencesUnder(root: string, absDir: string): ModuleReference[] {
  return codeFiles(absDir).flatMap((path) =>
    referencesIn(readFileSync(path, "utf8"), relative(root, path).split("\\").join("/")),
  );
}
