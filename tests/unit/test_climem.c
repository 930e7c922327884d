/* Unit tests of mem-set/mem-max's size argument (xl's syntax). */
#include "domus/cli.h"

#include "check.h"

int main(void)
{
    CHECK("no suffix: MiB", cli_parse_mem_kb("192") == 192 * 1024);
    CHECK("m", cli_parse_mem_kb("192m") == 192 * 1024);
    CHECK("M", cli_parse_mem_kb("192M") == 192 * 1024);
    CHECK("k", cli_parse_mem_kb("4096k") == 4096);
    CHECK("g", cli_parse_mem_kb("2g") == 2LL << 20);
    CHECK("T", cli_parse_mem_kb("1T") == 1LL << 30);
    CHECK("b: bytes, in KiB", cli_parse_mem_kb("1048576b") == 1024);
    CHECK("empty refused", cli_parse_mem_kb("") == -1);
    CHECK("NULL refused", cli_parse_mem_kb(NULL) == -1);
    CHECK("negative refused", cli_parse_mem_kb("-5") == -1);
    CHECK("leading space refused", cli_parse_mem_kb(" 5") == -1);
    CHECK("two-letter suffix refused", cli_parse_mem_kb("5mb") == -1);
    CHECK("unknown suffix refused", cli_parse_mem_kb("5q") == -1);
    CHECK("overflowing t refused", cli_parse_mem_kb("9999999999999t") == -1);
    CHECK("overflowing number refused",
          cli_parse_mem_kb("99999999999999999999999") == -1);
    return failures ? 1 : 0;
}
