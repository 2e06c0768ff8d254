import { AlreadyExistsError } from '../errors';
import { quote } from './bounds';

/**
 * Reserves unique names (pod and container names as the kubelet builds them)
 * atomically: the check and the claim happen in one synchronous step, so two
 * concurrent creates of the same name cannot both pass.
 */
export class NameRegistrar {
  private readonly owners = new Map<string, string>();

  constructor(private readonly what: string) {}

  reserve(name: string, id: string): void {
    const owner = this.owners.get(name);
    if (owner !== undefined && owner !== id) {
      throw new AlreadyExistsError(`${this.what} name ${quote(name, 256)} is already reserved by ${owner}; remove that one first`);
    }
    this.owners.set(name, id);
  }

  release(name: string, id?: string): void {
    if (id === undefined || this.owners.get(name) === id) this.owners.delete(name);
  }

  owner(name: string): string | undefined {
    return this.owners.get(name);
  }
}
