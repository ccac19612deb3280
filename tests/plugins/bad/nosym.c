/* nosym.c — a shared object without the lmpipe_plugin descriptor. */
int not_a_plugin(void);
int not_a_plugin(void) { return 42; }
