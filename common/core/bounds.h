/* Size limits shared by every subsystem: names and paths. */
#ifndef LDN_BOUNDS_H
#define LDN_BOUNDS_H

#define LDN_NAME_MAX 64   /* task, run and layer names, with the NUL */
#define LDN_PATH_MAX 1024 /* file paths, with the NUL */

#endif
