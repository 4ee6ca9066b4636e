// Reads an AWS Extend Switch Roles configuration from stdin with the extension's own parser
// (aesr-config's ConfigParser.parseIni) and prints the profile set as JSON, with the length of the
// LZ-String compressToUTF16 text the extension stores in sync storage. Errors: exit 1, message.
import { ConfigParser } from "aesr-config";
import LZString from "lz-string";
import { readFileSync } from "node:fs";

const text = readFileSync(0, "utf8");
try {
  const profileSet = ConfigParser.parseIni(text);
  const compressedChars = LZString.compressToUTF16(text).length;
  process.stdout.write(JSON.stringify({ singles: profileSet.singles, complexes: profileSet.complexes, compressedChars }));
} catch (error) {
  process.stderr.write(String(error && error.message || error));
  process.exit(1);
}
