import type { Logger } from '../log/logger';

/**
 * The undo stack of a multi-step operation: each step that changed
 * something registers how to take it back; on failure they run newest
 * first, and a failing undo is logged without hiding the original error.
 */
export class UndoStack {
  private readonly steps: Array<{ what: string; undo: () => Promise<unknown> }> = [];

  constructor(private readonly logger: Logger, private readonly fields: Record<string, string>) {}

  push(what: string, undo: () => Promise<unknown>): void {
    this.steps.push({ what, undo });
  }

  /** Runs every undo; false when one failed (what it should have removed may still be there). */
  async unwind(): Promise<boolean> {
    let clean = true;
    while (this.steps.length) {
      const { what, undo } = this.steps.pop()!;
      try {
        await undo();
      } catch (err) {
        clean = false;
        this.logger.error('cleanup step failed', { ...this.fields, step: what, error: (err as Error).message });
      }
    }
    return clean;
  }
}

/** Runs `fn`, tagging a failure with the step it happened in. */
export async function step<T>(name: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof Error) err.message = `${name}: ${err.message}`;
    throw err;
  }
}
