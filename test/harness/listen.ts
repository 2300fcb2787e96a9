// A test server's port: free, in 20000–29999 (the range this project's test servers use), tried at random.
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** Listens on 127.0.0.1 at a random free port of the range; returns the server's base URL. */
export async function listenInTestRange(server: Server): Promise<string> {
  for (let attempt = 0; ; attempt++) {
    const port = 20000 + Math.floor(Math.random() * 10000);
    const ok = await new Promise<boolean>((resolve) => {
      const taken = () => resolve(false);
      server.once('error', taken);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', taken);
        resolve(true);
      });
    });
    if (ok || attempt >= 20) break;
  }
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}
