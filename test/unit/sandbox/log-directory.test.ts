import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { InvalidArgumentError } from '../../../src/errors';
import { validateLogDirectory } from '../../../src/sandbox/validate';

describe('a pod\'s log directory', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'logdir-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('may not be a system directory, also through a symlink', async () => {
    for (const d of ['/', '/etc', '/usr', '/lib64', '/run', '/proc']) {
      await expect(validateLogDirectory(d, '', 'f')).rejects.toThrow(InvalidArgumentError);
    }
    symlinkSync('/etc', path.join(dir, 'to-etc'));
    await expect(validateLogDirectory(path.join(dir, 'to-etc'), '', 'f')).rejects.toThrow(/"\/etc" after symlinks\) is a system directory/);
  });

  it('may be below one, or not exist yet', async () => {
    await expect(validateLogDirectory('/var/log/pods/ns_p_uid', '', 'f')).resolves.toBeUndefined();
    await expect(validateLogDirectory(path.join(dir, 'new', 'deeper'), '', 'f')).resolves.toBeUndefined();
  });

  it('stays inside logging.podLogRoot when one is set, after symlinks', async () => {
    const root = path.join(dir, 'pods');
    mkdirSync(path.join(root, 'a'), { recursive: true });
    symlinkSync(dir, path.join(root, 'out'));
    await expect(validateLogDirectory(path.join(root, 'a'), root, 'f')).resolves.toBeUndefined();
    await expect(validateLogDirectory(path.join(root, 'b', 'c'), root, 'f')).resolves.toBeUndefined();
    await expect(validateLogDirectory(path.join(root, 'out', 'x'), root, 'f')).rejects.toThrow(/outside logging.podLogRoot/);
    await expect(validateLogDirectory(`${root}x`, root, 'f')).rejects.toThrow(/outside/);
  });
});
