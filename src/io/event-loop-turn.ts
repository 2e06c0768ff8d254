/**
 * A counter of event-loop turns, where a turn ends at the check phase
 * (setImmediate). Work that must share the loop fairly (container log
 * writers) counts what it did in the current turn and yields until the next
 * one when it has had its share.
 *
 * One process-wide immediate is armed only while someone asks, so an idle
 * daemon schedules nothing.
 */
let turn = 0;
let armed = false;

function advance(): void {
  armed = false;
  turn++;
}

/** The current turn's number; turns change only while someone keeps asking. */
export function currentTurn(): number {
  if (!armed) {
    armed = true;
    setImmediate(advance);
  }
  return turn;
}
