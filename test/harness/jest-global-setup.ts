/**
 * jest globalSetup: starts ONE harness (private containerd + registry + CNI
 * network, see index.ts) for the whole run, writes its description as JSON to
 * <harness tmp>/harness.json and puts that path in $CRI_ADAPTER_HARNESS, which
 * jest hands on to the test workers; tests read it with loadHarnessEnv().
 *
 * When the harness is started — the rule:
 *   1. CRI_ADAPTER_SKIP_HARNESS=1            → never.
 *   2. CRI_ADAPTER_HARNESS already names an existing file (a harness started
 *      by an outer process, e.g. a benchmark driver) → reuse it, start none.
 *   3. --onlyChanged / --changedSince / --findRelatedTests (jest cannot tell
 *      us the files yet) → start.
 *   4. Otherwise the test files this run selects are computed the way jest
 *      does (roots + testMatch `*.test.ts` + the command line's test path
 *      patterns); if every one of them is under test/unit/ → skip, else start.
 *      So `jest test/unit` (npm run test:unit) never starts containerd, while
 *      `jest` or `jest test/integration/...` does.
 */
import * as fs from 'fs';
import * as path from 'path';
import { GLOBAL_HANDLE, HARNESS_ENV } from './env';
import { Harness, startHarness } from './index';

/** The parts of jest's GlobalConfig / ProjectConfig used here (kept local: @jest/types is not a dependency). */
interface GlobalConfigLike {
  rootDir?: string;
  onlyChanged?: boolean;
  changedSince?: string;
  findRelatedTests?: boolean;
  runTestsByPath?: boolean;
  testPathPatterns?: {
    isSet?(): boolean;
    patterns?: string[];
    toExecutor?(o: { rootDir: string }): { isMatch(absPath: string): boolean };
  };
}
interface ProjectConfigLike {
  rootDir?: string;
  roots?: string[];
}

function listTestFiles(dir: string, out: string[] = []): string[] {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) {
    if (e.name === 'node_modules' || e.name.startsWith('.')) continue;
    const p = path.join(dir, e.name);
    if (e.isDirectory()) listTestFiles(p, out);
    else if (e.name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

/** Does this jest run need the harness? Returns the reason, for the log line. */
export function harnessNeeded(globalConfig: GlobalConfigLike, projectConfig: ProjectConfigLike): { needed: boolean; why: string } {
  if (process.env.CRI_ADAPTER_SKIP_HARNESS === '1') return { needed: false, why: 'CRI_ADAPTER_SKIP_HARNESS=1' };
  if (globalConfig.onlyChanged || globalConfig.changedSince || globalConfig.findRelatedTests) {
    return { needed: true, why: 'test selection by changed/related files' };
  }
  const rootDir = projectConfig.rootDir ?? globalConfig.rootDir ?? process.cwd();
  const roots = projectConfig.roots && projectConfig.roots.length > 0 ? projectConfig.roots : [rootDir];
  let files = roots.flatMap((r) => listTestFiles(r));
  const tpp = globalConfig.testPathPatterns;
  const patternsSet = tpp ? (typeof tpp.isSet === 'function' ? tpp.isSet() : (tpp.patterns ?? []).length > 0) : false;
  if (tpp && patternsSet) {
    if (typeof tpp.toExecutor === 'function') {
      const ex = tpp.toExecutor({ rootDir });
      files = files.filter((f) => ex.isMatch(f));
    } else {
      const res = (tpp.patterns ?? []).map((p) => new RegExp(p, 'i'));
      files = files.filter((f) => res.some((re) => re.test(f)));
    }
  }
  const unitDir = path.join(rootDir, 'test', 'unit') + path.sep;
  const needing = files.filter((f) => !f.startsWith(unitDir));
  if (needing.length === 0) return { needed: false, why: 'only unit tests selected' };
  return { needed: true, why: `${needing.length} non-unit test file(s) selected` };
}

export default async function globalSetup(globalConfig: GlobalConfigLike, projectConfig: ProjectConfigLike): Promise<void> {
  const existing = process.env[HARNESS_ENV];
  if (existing && fs.existsSync(existing)) return; // an outer harness; its owner stops it
  const { needed, why } = harnessNeeded(globalConfig ?? {}, projectConfig ?? {});
  const debug = process.env.CRI_ADAPTER_HARNESS_DEBUG === '1';
  if (debug) process.stderr.write(`\nharness: ${needed ? 'starting' : 'not started'} (${why})\n`);
  if (!needed) return;
  const t0 = Date.now();
  const harness: Harness = await startHarness({ criPlugin: true });
  if (debug) process.stderr.write(`harness: up in ${Date.now() - t0} ms, ${harness.tmpDir}\n`);
  const file = path.join(harness.tmpDir, 'harness.json');
  fs.writeFileSync(file, JSON.stringify(harness.describe(), null, 2));
  process.env[HARNESS_ENV] = file;
  (globalThis as Record<string, unknown>)[GLOBAL_HANDLE] = harness;
}
