//! Valid inputs each target starts from, generated here (no files in the repository).

use image::{ImageFormat, Rgb, RgbImage};

fn encode(img: image::DynamicImage, f: ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, f).expect("encodes");
    out.into_inner()
}

pub fn xml() -> Vec<Vec<u8>> {
    vec![
        b"<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n<trainingset>\r\n  <srcimg name=\"samples\\g000\\face_00000.jpg\"/>\r\n  <labelimg name=\"labels\\g000\\face_00000.png\"/>\r\n  <srcimg name=\"samples\\g000\\face_00001.jpg\"/>\r\n  <labelimg name=\"labels\\g000\\face_00001.png\"/>\r\n  <bboxes>\r\n    <bbox x=\"64\" y=\"51\" w=\"128\" h=\"153\" label=\"face\"/>\r\n  </bboxes>\r\n</trainingset>\r\n".to_vec(),
        b"<trainingset><srcimg name='a/b.png'/><labelimg name='c/d.png'/></trainingset>".to_vec(),
        b"<?xml version=\"1.0\"?><!DOCTYPE t [<!ENTITY a \"x\">]><trainingset><srcimg name=\"&a;.png\"/><labelimg name=\"l.png\"/></trainingset>".to_vec(),
    ]
}

pub fn manifest() -> Vec<Vec<u8>> {
    vec![
        br#"{"schema":"facepipe/dataset","schema_version":1,"root":"data","classes":[{"id":0,"name":"background","rgb":[0,0,0]},{"id":1,"name":"skin","rgb":[255,0,0],"pixels":12}],"items":[{"id":"g/a","image":"img/a.png","label_rgb":"lab/a.png","mask":"m/a.tif","split":"train","width":4,"height":3,"off_palette":0,"extra":{"k":[1,2]}},{"id":"g/b","image":"img/b.png","split":"valid","pred_mask":"p/b.tif"}],"provenance":[{"stage":"xml-pairs","version":"0.1.0","params":{"x":1},"inputs":[{"path":"t.xml","sha256":"00","bytes":3}],"summary":{"items":2}}]}"#.to_vec(),
        br#"{"schema":"facepipe/dataset","schema_version":1,"items":[]}"#.to_vec(),
    ]
}

pub fn reference() -> Vec<Vec<u8>> {
    vec![
        b"participant_id,age,left_cheek_L,left_cheek_a,left_cheek_b,right_cheek_L,right_cheek_a,right_cheek_b\nsamples/g000/face_00000#0,31,61.2,14.1,17.9,60.8,13.7,18.2\nsamples/g000/face_00001#0,45,,,,58.1,12.0,16.5\n\"q,uoted\"#0,20,55,10,12,NA,NA,NA\n".to_vec(),
        "\u{feff}participant_id,left_cheek_L,left_cheek_a,left_cheek_b,right_cheek_L,right_cheek_a,right_cheek_b\r\nx#0,1e1,-2,3.5,4,5,6\r\n".as_bytes().to_vec(),
    ]
}

/// Labels: the streamed RGB8 PNG, an RGBA PNG, a grayscale PNG, a JPEG, a BMP.
pub fn label() -> Vec<Vec<u8>> {
    let palette = [[0u8, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255], [128, 128, 128]];
    let img = RgbImage::from_fn(12, 9, |x, y| Rgb(palette[((x / 3 + y / 2) % 5) as usize]));
    let d = image::DynamicImage::ImageRgb8(img);
    vec![
        encode(d.clone(), ImageFormat::Png),
        encode(image::DynamicImage::ImageRgba8(d.to_rgba8()), ImageFormat::Png),
        encode(image::DynamicImage::ImageLuma8(d.to_luma8()), ImageFormat::Png),
        encode(d.clone(), ImageFormat::Jpeg),
        encode(d, ImageFormat::Bmp),
        facepipe_core::images::bomb_png(40_000, 3),
    ]
}

/// Masks: 8-bit TIFF (as rgb2class and unet-eval write them) and PNG.
pub fn mask() -> Vec<Vec<u8>> {
    let m = image::GrayImage::from_fn(10, 7, |x, y| image::Luma([((x + y) % 4) as u8]));
    let d = image::DynamicImage::ImageLuma8(m);
    vec![encode(d.clone(), ImageFormat::Tiff), encode(d, ImageFormat::Png)]
}

/// Weights: a small safetensors file of the float types burn-store knows (and an integer one),
/// and a PyTorch zip archive holding an empty state dict.
pub fn weights() -> Vec<Vec<u8>> {
    use safetensors::Dtype;
    use safetensors::tensor::TensorView;
    let f32s: Vec<u8> = [0.5f32, -1.0, 2.0, 0.25, 3.0, 1e-3]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let f16s: Vec<u8> = [0x3c00u16, 0xbc00, 0x4000]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let f64s: Vec<u8> = [1.5f64, -2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    let i64s: Vec<u8> = 7i64.to_le_bytes().to_vec();
    let views = vec![
        (
            "conv1.weight",
            TensorView::new(Dtype::F32, vec![2, 3], &f32s).expect("view"),
        ),
        ("bn1.weight", TensorView::new(Dtype::F16, vec![3], &f16s).expect("view")),
        ("bn1.bias", TensorView::new(Dtype::BF16, vec![3], &f16s).expect("view")),
        (
            "bn1.running_mean",
            TensorView::new(Dtype::F64, vec![2], &f64s).expect("view"),
        ),
        (
            "bn1.num_batches_tracked",
            TensorView::new(Dtype::I64, vec![], &i64s).expect("view"),
        ),
    ];
    let st = safetensors::serialize(views, None).expect("serialises");
    vec![st, zip_stored("archive/data.pkl", b"\x80\x02}q\x00.")]
}

/// A zip archive with one stored (uncompressed) file: the layout `torch.save` writes.
fn zip_stored(name: &str, data: &[u8]) -> Vec<u8> {
    let crc = facepipe_core::images::crc32(data);
    let (n, len) = (name.len() as u16, data.len() as u32);
    let mut out = Vec::new();
    out.extend(0x0403_4b50u32.to_le_bytes()); // local file header
    out.extend([20, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // version, flags, method 0, time, date
    out.extend(crc.to_le_bytes());
    out.extend(len.to_le_bytes());
    out.extend(len.to_le_bytes());
    out.extend(n.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out.extend(name.as_bytes());
    out.extend(data);
    let central = out.len() as u32;
    out.extend(0x0201_4b50u32.to_le_bytes()); // central directory
    out.extend([20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // made by, needed, flags, method, time, date
    out.extend(crc.to_le_bytes());
    out.extend(len.to_le_bytes());
    out.extend(len.to_le_bytes());
    out.extend(n.to_le_bytes());
    out.extend([0u8; 12]); // extra, comment, disk, internal attrs, external attrs (4)
    out.extend(0u32.to_le_bytes()); // local header offset
    out.extend(name.as_bytes());
    let size = out.len() as u32 - central;
    out.extend(0x0605_4b50u32.to_le_bytes()); // end of central directory
    out.extend([0, 0, 0, 0, 1, 0, 1, 0]);
    out.extend(size.to_le_bytes());
    out.extend(central.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out
}

/// A model directory's files as the report reads them: `model.json` (with an lr_find sweep
/// with a NaN loss; named the way files were before the `schema` naming rule, which readers
/// still take) and `metrics.csv` (two phases, an empty IoU cell).
pub const MODEL_JSON: &str = r#"{"format":"facepipe.model","format_version":1,"arch":"smp","classes":[{"id":0,"name":"background","rgb":[0,0,0]},{"id":1,"name":"skin","rgb":[128,128,128]}],"preprocessing":{"input_size":64,"crop":"centre","resize":"bilinear","mean":[0.485,0.456,0.406],"std":[0.229,0.224,0.225]},"best":{"burnpack":"best.bpk","safetensors":"best.safetensors","record":{"phase":"fit","epoch":0,"train_loss":1.2,"valid_loss":1.1,"dice":[0.95,null],"iou":[0.9,null],"mean_dice":0.6,"mean_iou":0.5,"mean_dice_fg":0.4,"mean_iou_fg":0.3,"pixel_accuracy":0.85,"lrs":[0.0001,0.0001,0.001],"seconds":1.0,"size":64}},"last":{"burnpack":"last.bpk","safetensors":"last.safetensors","record":{"phase":"fit","epoch":0,"train_loss":1.2,"valid_loss":1.1,"dice":[0.95,null],"iou":[0.9,null],"mean_dice":0.6,"mean_iou":0.5,"mean_dice_fg":0.4,"mean_iou_fg":0.3,"pixel_accuracy":0.85,"lrs":[0.0001,0.0001,0.001],"seconds":1.0,"size":64}},"recipe":{"patience":2,"loss":"ce","steps":[{"lr_find":{}},{"fit_one_cycle":{"epochs":1,"lr_max":"auto"}}]},"manifest":"/d/split.json","manifest_sha256":"ab","n_train":8,"n_valid":4,"batch_size":2,"seed":7,"device":"cpu","pretrained":null,"lr_find":[{"lrs":[1e-07,1e-06,1e-05,0.0001,0.001,0.01,0.1,1.0],"losses":[2.0,1.9,1.7,1.2,0.9,1.5,null,4.0],"suggestions":{"valley":0.0001,"minimum":0.0001,"steep":1e-05},"untrusted":"too short"}],"fit_lrs":[{"phase":"fit","lr_max":[0.0001,0.0001,0.001],"source":"valley"}],"epochs":2,"facepipe_version":"0.1.0"}"#;
pub const METRICS_CSV: &str = "phase,epoch,size,train_loss,valid_loss,pixel_accuracy,mean_dice,mean_iou,mean_dice_fg,mean_iou_fg,dice_background,dice_skin,iou_background,iou_skin,lr_group0,lr_group1,lr_group2,seconds\nfrozen,0,64,1.5,1.4,0.8,0.5,0.4,0.3,0.2,0.95,0.3,0.9,0.2,1e-4,1e-4,1e-3,1.0\nfit,0,64,1.2,1.1,0.85,0.6,0.5,0.4,0.3,0.96,,0.92,,2e-4,2e-4,2e-3,1.0\n";

pub fn model_files() -> Vec<Vec<u8>> {
    // a diverged run's numbers: once they hung the report's charts
    let extreme = METRICS_CSV
        .replace("1.5,1.4", "inf,NaN")
        .replace("1.2,1.1", "-1e308,1e308");
    vec![
        MODEL_JSON.as_bytes().to_vec(),
        METRICS_CSV.as_bytes().to_vec(),
        extreme.into_bytes(),
    ]
}
