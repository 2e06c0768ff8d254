import type { CallContext } from '../containerd/call';
import { deleteTask, stopTask } from '../containerd/tasks';
import { cniDel } from '../network/cni';
import { removeNetns } from '../network/netns';
import type { SandboxContext } from './context';
import { releaseShm, sandboxFilePaths } from './files';
import type { SandboxRecord } from './model';
import { persistSandbox } from './persist';
import { cniCapabilities } from '../network/cni-capabilities';
import { NamespaceMode } from '../gen/runtime/v1/api';

/**
 * Tears down the pod's network: CNI DEL with the ADD result, then the
 * namespace. Plugin errors and a namespace that is already gone are logged,
 * not fatal: a pod must always be stoppable, and DEL is best effort by spec.
 */
export async function teardownNetwork(ctx: SandboxContext, record: SandboxRecord): Promise<void> {
  for (const release of ctx.networkUsers) release(record.id);
  if (record.networkTornDown) return;
  const network = ctx.cni.network;
  const md = record.config.metadata!;
  if (record.netnsPath && network) {
    const errors = await cniDel(
      network,
      {
        containerId: record.id,
        netnsPath: record.netnsPath,
        ifName: 'eth0',
        podName: md.name,
        podNamespace: md.namespace,
        podUid: md.uid,
        capabilities: cniCapabilities(record.config, ctx.podCidr()),
      },
      record.cniResult,
      { binDirs: ctx.config.cni.binDirs, timeoutMs: ctx.config.cni.pluginTimeoutSeconds * 1000 },
    );
    for (const e of errors) ctx.logger.warn('CNI DEL failed; continuing', { podSandboxId: record.id, error: e.message });
  }
  if (record.netnsName) await removeNetns(record.netnsName);
  record.networkTornDown = true;
}

/** StopPodSandbox: idempotent; the sandbox stays listed as NOTREADY. */
export async function stopPodSandbox(ctx: SandboxContext, record: SandboxRecord, call: CallContext): Promise<void> {
  const id = record.id;
  await ctx.containersOf.stopAll(id, call.signal);
  await ctx.locks.run(id, async () => {
    const wasTornDown = record.networkTornDown;
    // pause holds nothing worth a grace period; its network is torn down meanwhile (they do not
    // depend on each other; containerd's CRI plugin even tears the network down first).
    const [task, network] = await Promise.allSettled([
      (async () => {
        await stopTask(ctx.conn, id, 9, 0, call);
        await deleteTask(ctx.conn, id, call);
        record.state = 'notready';
        record.pid = 0;
      })(),
      teardownNetwork(ctx, record),
    ]);
    if (task.status === 'rejected') throw task.reason;
    if (network.status === 'rejected') throw network.reason;
    const hostIpc = record.config.linux?.securityContext?.namespaceOptions?.ipc === NamespaceMode.NODE;
    await releaseShm(sandboxFilePaths(ctx.config.state, id, hostIpc));
    if (!wasTornDown) await persistSandbox(ctx, record);
    ctx.logger.info('pod sandbox stopped', { podSandboxId: id });
  });
}
