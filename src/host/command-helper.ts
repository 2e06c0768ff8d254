/**
 * The command helper's own process (see host/commands.ts): runs the commands
 * the daemon sends over the IPC channel and answers with their exit and
 * output. It holds nothing: when the daemon goes away it exits, and the
 * commands it started finish on their own.
 */
import { FromHelper, RunningCommand, runHere, ToHelper } from './commands';

const running = new Map<number, RunningCommand>();

function answer(message: FromHelper): void {
  if (process.connected) process.send!(message);
}

process.on('message', (m: ToHelper) => {
  if (m.kind === 'kill') {
    running.get(m.id)?.kill();
    return;
  }
  let command: RunningCommand;
  try {
    command = runHere(m.request);
  } catch (err) {
    answer({ id: m.id, error: { message: (err as Error).message, code: (err as NodeJS.ErrnoException).code } });
    return;
  }
  running.set(m.id, command);
  answer({ id: m.id, started: true });
  command.result.then(
    (result) => answer({ id: m.id, result }),
    (err: NodeJS.ErrnoException) => answer({ id: m.id, error: { message: err.message, code: err.code } }),
  ).finally(() => running.delete(m.id));
});

process.on('disconnect', () => process.exit(0));
