/* scoreboard: add to and show a shared high-score table (run setgid games). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_FILE "/var/games/scoreboard/scores"

static int usage(void)
{
    fputs("usage: scoreboard [--file FILE] add NAME SCORE | show\n", stderr);
    return 2;
}

int main(int argc, char **argv)
{
    const char *file = DEFAULT_FILE;
    int i = 1;

    if (argc > 2 && strcmp(argv[1], "--file") == 0) {
        file = argv[2];
        i = 3;
    }
    if (i < argc && strcmp(argv[i], "add") == 0 && argc == i + 3) {
        char *end;
        long score = strtol(argv[i + 2], &end, 10);
        FILE *f;
        if (*end != '\0' || strchr(argv[i + 1], ' ') != NULL)
            return usage();
        if ((f = fopen(file, "a")) == NULL) {
            fprintf(stderr, "scoreboard: %s: %s\n", file, strerror(errno));
            return 1;
        }
        fprintf(f, "%s %ld\n", argv[i + 1], score);
        return fclose(f) == 0 ? 0 : 1;
    }
    if (i < argc && strcmp(argv[i], "show") == 0 && argc == i + 1) {
        char line[256];
        FILE *f = fopen(file, "r");
        if (f == NULL) {
            fprintf(stderr, "scoreboard: %s: %s\n", file, strerror(errno));
            return 1;
        }
        while (fgets(line, sizeof line, f) != NULL)
            fputs(line, stdout);
        fclose(f);
        return 0;
    }
    return usage();
}
