export function checkCommand(_a: string[]): number { return 0; }
