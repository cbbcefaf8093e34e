/* hello: print a friendly greeting. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define VERSION "1.0"

static void usage(FILE *out)
{
    fputs("usage: hello [-n NAME] [-v]\n", out);
}

int main(int argc, char **argv)
{
    const char *name = "world";
    int opt;

    while ((opt = getopt(argc, argv, "n:vh")) != -1) {
        switch (opt) {
        case 'n':
            name = optarg;
            break;
        case 'v':
            puts("hello " VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    printf("Hello, %s!\n", name);
    return 0;
}
