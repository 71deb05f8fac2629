import { orphanedRecords, teardownRecord } from './resources';

// Undoes lab runs that were killed before they could tear down (kill -9, power loss).
const records = orphanedRecords();
for (const record of records) {
  process.stdout.write(`lab: cleaning run ${record.id}: ${record.namespaces.length} namespaces, ${record.processes.length} processes\n`);
  teardownRecord(record, (line) => process.stdout.write(`${line}\n`));
}
if (records.length === 0) process.stdout.write('lab: nothing to clean\n');
