/**
 * The README's first command: a private containerd, a local registry and the
 * adapter, then a pod and a container through the CRI socket to show it
 * working. Runs until Ctrl-C (or exits at once with --exit), then removes
 * everything it started.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import {
  ContainerStatusRequest,
  CreateContainerRequest,
  PodSandboxConfig,
  PullImageRequest,
  RunPodSandboxRequest,
} from '../../src/gen/runtime/v1/api';
import { startAdapter } from '../support/adapter-process';
import { harnessAdapterArgs } from '../support/harness-adapter';
import { startHarness } from './index';

async function main(): Promise<void> {
  const exitAtOnce = process.argv.includes('--exit');
  console.log('starting a private containerd, a local registry and a CNI bridge...');
  const h = await startHarness();
  const adapter = await startAdapter({
    containerdAddress: h.containerd.address,
    cniConfDir: h.cni.confDir,
    namespace: 'cri-adapter-quickstart',
    extraArgs: harnessAdapterArgs(h, ['--log-level', 'info']),
  });
  const stopAll = async () => {
    await adapter.stop();
    await h.stop();
  };
  try {
    const cri = adapter.client;
    const v = await cri.runtime.version({ version: '' });
    console.log(`\ncri-adapter ${v.runtimeVersion} answers on ${adapter.socket} (CRI ${v.runtimeApiVersion})`);
    const status = await cri.runtime.status({ verbose: false });
    for (const c of status.status?.conditions ?? []) console.log(`  ${c.type}=${c.status}${c.message ? ` (${c.message})` : ''}`);

    const logDir = path.join(adapter.dir, 'pod-logs');
    const podConfig = PodSandboxConfig.fromPartial({
      metadata: { name: 'hello', namespace: 'default', uid: 'quickstart-1' },
      hostname: 'hello',
      logDirectory: logDir,
      linux: {},
    });
    const { imageRef } = await cri.image.pullImage(PullImageRequest.fromPartial({ image: { image: h.images.busybox } }));
    console.log(`\npulled ${h.images.busybox} -> ${imageRef}`);
    const { podSandboxId } = await cri.runtime.runPodSandbox(RunPodSandboxRequest.fromPartial({ config: podConfig }));
    const pod = await cri.runtime.podSandboxStatus({ podSandboxId, verbose: false });
    console.log(`pod ${podSandboxId.slice(0, 13)} is running with IP ${pod.status?.network?.ip}`);
    const { containerId } = await cri.runtime.createContainer(
      CreateContainerRequest.fromPartial({
        podSandboxId,
        sandboxConfig: podConfig,
        config: {
          metadata: { name: 'greeter' },
          image: { image: h.images.busybox },
          command: ['sh', '-c', 'echo "hello from $(hostname), uid $(id -u)"; ip -4 addr show eth0 | grep inet'],
          logPath: 'greeter.log',
          linux: {},
        },
      }),
    );
    await cri.runtime.startContainer({ containerId });
    for (let i = 0; i < 50; i++) {
      const s = await cri.runtime.containerStatus(ContainerStatusRequest.fromPartial({ containerId }));
      if (s.status?.state === 2) {
        console.log(`container ${containerId.slice(0, 13)} exited with ${s.status.exitCode} (${s.status.reason}); its CRI log:`);
        break;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    console.log(readFileSync(path.join(logDir, 'greeter.log'), 'utf8').replace(/^/gm, '  '));

    console.log('Try it yourself (crictl, if installed):');
    console.log(`  crictl --runtime-endpoint unix://${adapter.socket} --image-endpoint unix://${adapter.socket} pods`);
    console.log(`  crictl --runtime-endpoint unix://${adapter.socket} --image-endpoint unix://${adapter.socket} ps -a`);
    console.log(`containerd: ctr --address ${h.containerd.address} -n cri-adapter-quickstart containers ls`);
    if (exitAtOnce) {
      await cri.runtime.removePodSandbox({ podSandboxId });
      await stopAll();
      return;
    }
    console.log('\nPress Ctrl-C to stop and remove everything.');
    await new Promise<void>((resolve) => {
      process.once('SIGINT', () => resolve());
      process.once('SIGTERM', () => resolve());
    });
    await cri.runtime.removePodSandbox({ podSandboxId }).catch(() => undefined);
    await stopAll();
  } catch (err) {
    console.error(err);
    console.error(adapter.logs().split('\n').slice(-20).join('\n'));
    await stopAll();
    process.exitCode = 1;
  }
}

void main();
