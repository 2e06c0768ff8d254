/**
 * Stand-ins for the images the cri-tools validation suite (critest) and the
 * crictl acceptance runs pull from the internet, pushed to the harness's
 * local registry under the same repository paths. The harness's hosts.toml
 * `_default` entry sends every registry host (registry.k8s.io, gcr.io) to that
 * registry, so `registry.k8s.io/e2e-test-images/busybox:1.29-2` resolves to
 * `<local>/e2e-test-images/busybox:1.29-2`.
 *
 * What the suite checks in each image is what these give: users and groups
 * in /etc/passwd and /etc/group, an image USER, a web server answering 200
 * (test/harness/critest/webserver.c), a setuid binary printing its effective
 * uid (critest/nnp.c), different or equal image IDs per tag. The busybox is
 * Debian's dynamically linked one (fetched with `apt-get download`, run with
 * the host's libc), whose shell executes applets as programs, as the public
 * image's does: busybox-static runs `ls` inside the shell, so a masked
 * /bin/ls would still work. Its hard-linked applets keep /bin/busybox usable
 * when /bin/ls is masked. `pgrep` and `ipcs`, which Debian's busybox lacks,
 * are the host's (procps, util-linux) with their libraries. The one spec it
 * cannot pass is the digest-pinned pull (`test-image-digest@sha256:9700…`):
 * no locally built image has that digest.
 */
import * as fs from 'fs';
import * as path from 'path';
import { busyboxEntries, BuiltImage, buildImage, compileStatic, DEFAULT_PATH, LayerEntry, pushImage } from './images';
import { run } from './util';

/** busybox:1.36.1's accounts that the suite's images rely on (www-data is 33). */
const PASSWD = [
  'root:x:0:0:root:/root:/bin/sh',
  'daemon:x:1:1:daemon:/usr/sbin:/bin/false',
  'www-data:x:33:33:www-data:/var/www:/bin/false',
  'nobody:x:65534:65534:nobody:/home:/bin/false',
  '',
].join('\n');
const GROUP = ['root:x:0:', 'daemon:x:1:', 'www-data:x:33:', 'nogroup:x:65534:', ''].join('\n');

const E2E = 'e2e-test-images';
const CRI_TOOLS = 'k8s-staging-cri-tools';

interface Push {
  repo: string;
  tags: string[];
  image: BuiltImage;
}

/** goarch as Go names it, for hostnet-nginx-<arch>. */
function goArch(): string {
  return { x64: 'amd64', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le' }[process.arch as string] ?? process.arch;
}

/** Debian's non-static busybox binary, downloaded and unpacked into buildDir once. */
async function debianBusybox(buildDir: string): Promise<string> {
  const dir = path.join(buildDir, 'busybox-deb');
  const bin = path.join(dir, 'root', 'bin', 'busybox');
  if (fs.existsSync(bin)) return bin;
  fs.mkdirSync(dir, { recursive: true });
  await run('apt-get', ['download', 'busybox'], { cwd: dir, timeoutMs: 120_000 });
  const deb = fs.readdirSync(dir).find((n) => n.endsWith('.deb'));
  if (!deb) throw new Error(`apt-get download busybox left no .deb in ${dir}`);
  await run('dpkg-deb', ['-x', path.join(dir, deb), path.join(dir, 'root')]);
  return bin;
}

/** Host programs at their own paths, with the shared libraries ldd names for them (and for `also`). */
async function hostProgramEntries(programs: string[], also: string[]): Promise<LayerEntry[]> {
  const files = new Set(programs);
  for (const p of [...programs, ...also]) {
    const { stdout } = await run('ldd', [p]);
    for (const m of stdout.matchAll(/(?:=>\s*)?(\/\S+)\s+\(0x/g)) files.add(m[1]);
  }
  const dirs = new Set<string>();
  for (const f of files) for (let d = path.dirname(f); d !== '/'; d = path.dirname(d)) dirs.add(d);
  return [
    ...[...dirs].sort().map((d): LayerEntry => ({ type: 'dir', path: d })),
    // the real file's bytes at the path the loader asks for (ld-linux is a symlink on the host)
    ...[...files].map((f): LayerEntry => ({ type: 'file', path: f, source: fs.realpathSync(f), mode: 0o755 })),
  ];
}

export async function buildCritestImages(buildDir: string): Promise<Push[]> {
  const [web, nnp, busybox] = await Promise.all([
    compileStatic(path.join('critest', 'webserver.c'), buildDir, 'webserver'),
    compileStatic(path.join('critest', 'nnp.c'), buildDir, 'nnp'),
    debianBusybox(buildDir),
  ]);
  const hostPrograms = await hostProgramEntries(['/usr/bin/pgrep', '/usr/bin/ipcs'], [busybox]);
  const busyboxWith = (users: { passwd: string; group: string }): LayerEntry[] => {
    const entries = busyboxEntries(busybox, users, 'hard');
    const taken = new Set(entries.map((e) => e.path.replace(/^\//, '')));
    return [...entries, ...hostPrograms.filter((e) => !taken.has(e.path.replace(/^\//, '')))];
  };
  const base = busyboxWith({ passwd: PASSWD, group: GROUP });
  const image = (extra: LayerEntry[], config: { env?: string[]; cmd?: string[]; user?: string }, baseEntries = base): BuiltImage =>
    buildImage({
      layers: extra.length > 0 ? [{ entries: baseEntries }, { entries: extra }] : [{ entries: baseEntries }],
      config: { ...config, env: [DEFAULT_PATH, ...(config.env ?? [])], cmd: config.cmd ?? ['sh'] },
    });
  const webServer = (binary: string, env: string[]): BuiltImage =>
    image(
      [
        { type: 'dir', path: path.dirname(binary) },
        { type: 'file', path: binary, source: web, mode: 0o755 },
        { type: 'dir', path: 'var' },
        { type: 'dir', path: 'var/run' },
      ],
      { env, cmd: [`/${binary}`] },
    );
  const nginxEnv = (port: number): string[] => [
    `WEB_PORT=${port}`,
    'WEB_NAME=nginx',
    'WEB_PIDFILE=/var/run/nginx.pid',
    'WEB_ARGV0=nginx: master process nginx -g daemon off;',
  ];
  const marker = (name: string): LayerEntry[] => [{ type: 'file', path: name, content: `${name}\n` }];
  const predefinedGroup = busyboxWith({
    passwd: PASSWD + 'default-user:x:1000:1000::/home/default-user:/bin/sh\n',
    group: GROUP + 'default-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\n',
  });
  const sameTags = image(marker('same-image'), {});

  return [
    { repo: `${E2E}/busybox`, tags: ['1.29-2'], image: image([], {}) },
    { repo: `${E2E}/nginx`, tags: ['1.14-2'], image: webServer('usr/sbin/nginx', nginxEnv(80)) },
    { repo: `${E2E}/httpd`, tags: ['2.4.39-4'], image: webServer('usr/local/apache2/bin/httpd', ['WEB_PORT=80', 'WEB_NAME=httpd -D FOREGROUND'] /* critest 1.26 greps the log for Apache's command line */) },
    {
      repo: `${E2E}/nonewprivs`,
      tags: ['1.3'],
      image: image([{ type: 'dir', path: 'usr/local/bin' }, { type: 'file', path: 'usr/local/bin/nnp', source: nnp, mode: 0o4755, uid: 0, gid: 0 }], {
        cmd: ['/usr/local/bin/nnp'],
      }),
    },
    { repo: `${CRI_TOOLS}/hostnet-nginx-${goArch()}`, tags: ['latest'], image: webServer('usr/sbin/nginx', nginxEnv(12003)) },
    { repo: `${CRI_TOOLS}/test-image-user-uid`, tags: ['latest'], image: image([], { user: '1002' }) },
    { repo: `${CRI_TOOLS}/test-image-user-username`, tags: ['latest'], image: image([], { user: 'www-data' }) },
    { repo: `${CRI_TOOLS}/test-image-user-uid-group`, tags: ['latest'], image: image([], { user: '1003:1004' }) },
    { repo: `${CRI_TOOLS}/test-image-user-username-group`, tags: ['latest'], image: image([], { user: 'www-data:1004' }) },
    { repo: `${CRI_TOOLS}/test-image-predefined-group`, tags: ['latest'], image: image([], { user: '1000' }, predefinedGroup) },
    ...['test-image-1', 'test-image-2', 'test-image-3', 'test-image-latest'].map((n) => ({
      repo: `${CRI_TOOLS}/${n}`,
      tags: ['latest'],
      image: image(marker(n), {}),
    })),
    { repo: `${CRI_TOOLS}/test-image-tags`, tags: ['1', '2', '3'], image: sameTags },
    ...['test', 'all'].map((t) => ({ repo: `${CRI_TOOLS}/test-image-tag`, tags: [t], image: image(marker(t), {}) })),
  ];
}

/** Build and push them all; returns the references as the suite names them (registry.k8s.io/…, gcr.io/…). */
export async function pushCritestImages(registryHost: string, buildDir: string): Promise<string[]> {
  const pushes = await buildCritestImages(buildDir);
  const names: string[] = [];
  for (const p of pushes) {
    for (const tag of p.tags) {
      await pushImage(registryHost, p.repo, tag, p.image);
      names.push(`${p.repo.startsWith(E2E) ? 'registry.k8s.io' : 'gcr.io'}/${p.repo}:${tag}`);
    }
  }
  return names;
}
