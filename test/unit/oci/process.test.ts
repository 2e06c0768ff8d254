import { ContainerConfig, KeyValue } from '../../../src/gen/runtime/v1/api';
import { InvalidArgumentError } from '../../../src/errors';
import { newBaseSpec } from '../../../src/oci/defaults';
import {
  containerEnv,
  criEnvToStrings,
  mergeEnv,
  resolveProcessArgs,
  resolveWorkingDir,
  withCwd,
  withDefaultPathEnv,
  withEnv,
  withProcessArgs,
  withTerminal,
} from '../../../src/oci/process';

const kv = (key: string, value: string) => KeyValue.fromPartial({ key, value: Buffer.from(value) });

describe('resolveProcessArgs', () => {
  const image = { Entrypoint: ['/entry'], Cmd: ['--serve', '80'] };

  it('uses image Entrypoint + Cmd when the config sets neither', () => {
    expect(resolveProcessArgs([], [], image)).toEqual(['/entry', '--serve', '80']);
  });

  it('replaces Cmd with args and keeps the Entrypoint', () => {
    expect(resolveProcessArgs([], ['--debug'], image)).toEqual(['/entry', '--debug']);
  });

  it('uses only the command when command is set and args are empty (image Cmd dropped)', () => {
    expect(resolveProcessArgs(['/bin/sh'], [], image)).toEqual(['/bin/sh']);
  });

  it('uses command + args when both are set', () => {
    expect(resolveProcessArgs(['/bin/sh'], ['-c', 'echo hi'], image)).toEqual(['/bin/sh', '-c', 'echo hi']);
  });

  it('treats ENTRYPOINT [""] as no entrypoint', () => {
    expect(resolveProcessArgs([], [], { Entrypoint: [''], Cmd: ['sh'] })).toEqual(['sh']);
  });

  it('copes with null Entrypoint/Cmd in image configs', () => {
    expect(resolveProcessArgs([], ['x'], { Entrypoint: null, Cmd: null })).toEqual(['x']);
  });

  it('fails with InvalidArgumentError "no command specified" when nothing is left', () => {
    expect(() => resolveProcessArgs([], [], {})).toThrow(InvalidArgumentError);
    expect(() => resolveProcessArgs([], [], {})).toThrow(/no command specified/);
  });

  it('is applied by withProcessArgs as a copy', () => {
    const args = ['a', 'b'];
    const spec = newBaseSpec();
    withProcessArgs(args)(spec);
    args.push('c');
    expect(spec.process.args).toEqual(['a', 'b']);
  });
});

describe('mergeEnv', () => {
  it('keeps first positions and last values', () => {
    expect(mergeEnv(['A=1', 'B=2'], ['C=3', 'A=9'])).toEqual(['A=9', 'B=2', 'C=3']);
  });

  it('lets a later duplicate within overrides win', () => {
    expect(mergeEnv([], ['X=1', 'X=2'])).toEqual(['X=2']);
  });

  it('keeps values containing "="', () => {
    expect(mergeEnv([], ['OPTS=a=b=c'])).toEqual(['OPTS=a=b=c']);
  });

  it('unsets on a bare key', () => {
    expect(mergeEnv(['A=1', 'B=2'], ['A'])).toEqual(['B=2']);
    expect(mergeEnv(['A=1'], ['A', 'A=3'])).toEqual(['A=3']);
  });

  it('allows empty values', () => {
    expect(mergeEnv(['A=1'], ['A='])).toEqual(['A=']);
  });
});

describe('env options', () => {
  it('withEnv merges into the spec env', () => {
    const spec = newBaseSpec();
    withEnv(['PATH=/bin', 'FOO=bar'])(spec);
    expect(spec.process.env).toEqual(['PATH=/bin', 'FOO=bar']);
  });

  it('withDefaultPathEnv adds PATH only when missing', () => {
    const spec = newBaseSpec();
    spec.process.env = ['FOO=1'];
    withDefaultPathEnv(spec);
    expect(spec.process.env?.[0]).toMatch(/^PATH=\/usr\/local\/sbin/);
    spec.process.env = ['PATH=/custom'];
    withDefaultPathEnv(spec);
    expect(spec.process.env).toEqual(['PATH=/custom']);
  });

  it('criEnvToStrings decodes byte values and validates keys', () => {
    expect(criEnvToStrings([kv('A', 'ä=1')])).toEqual(['A=ä=1']);
    expect(criEnvToStrings([{ key: 'U', value: new Uint8Array([104, 105]) as Buffer }])).toEqual(['U=hi']);
    expect(() => criEnvToStrings([kv('', 'x')])).toThrow(/envs\[0\]\.key/);
    expect(() => criEnvToStrings([kv('A', '1'), kv('B=C', 'x')])).toThrow(/envs\[1\]\.key/);
  });

  it('containerEnv orders PATH, TERM, HOSTNAME, image env, config env', () => {
    const config = ContainerConfig.fromPartial({ tty: true, envs: [{ key: 'FOO', value: Buffer.from('cfg') }, { key: 'NEW', value: Buffer.from('1') }] });
    const env = containerEnv(config, { Env: ['PATH=/img/bin', 'FOO=img', 'TERM=vt100'] }, 'web');
    expect(env).toEqual(['PATH=/img/bin', 'TERM=vt100', 'HOSTNAME=web', 'FOO=cfg', 'NEW=1']);
  });

  it('containerEnv has no TERM without a tty and no HOSTNAME without a name', () => {
    const env = containerEnv(ContainerConfig.fromPartial({}), {}, '');
    expect(env).toEqual(['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin']);
  });
});

describe('working directory and terminal', () => {
  it('prefers the config, then the image, then /', () => {
    expect(resolveWorkingDir('/work', { WorkingDir: '/img' })).toBe('/work');
    expect(resolveWorkingDir('', { WorkingDir: '/img/' })).toBe('/img');
    expect(resolveWorkingDir('', {})).toBe('/');
  });

  it('reads a relative image WorkingDir from / and rejects a relative config one', () => {
    expect(resolveWorkingDir('', { WorkingDir: 'app' })).toBe('/app');
    expect(() => resolveWorkingDir('rel', {})).toThrow(/working_dir/);
  });

  it('withCwd and withTerminal set the process fields', () => {
    const spec = newBaseSpec();
    withCwd('/srv')(spec);
    withTerminal(true)(spec);
    expect(spec.process.cwd).toBe('/srv');
    expect(spec.process.terminal).toBe(true);
    withTerminal(false)(spec);
    expect(spec.process.terminal).toBeUndefined();
  });
});
